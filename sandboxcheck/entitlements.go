package sandboxcheck

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// csMagicEmbeddedEntitlements starts the entitlements blob of a code signature (xnu's
// CSMAGIC_EMBEDDED_ENTITLEMENTS); a big-endian total length follows, then an XML property list.
const csMagicEmbeddedEntitlements = 0xfade7171

const entitlementsHeaderSize = 8

// maxEntitlementsBlob bounds what parseEntitlementGroups accepts; real blobs are a few KiB.
const maxEntitlementsBlob = 1 << 20

// ErrBadEntitlements reports an entitlements blob that cannot be read.
var ErrBadEntitlements = errors.New("sandboxcheck: malformed entitlements blob")

// entitlementsBlobLen reads the total length from a blob's header.
func entitlementsBlobLen(header []byte) (int, error) {
	if len(header) < entitlementsHeaderSize {
		return 0, fmt.Errorf("%w: %d-byte header", ErrBadEntitlements, len(header))
	}
	if m := binary.BigEndian.Uint32(header); m != csMagicEmbeddedEntitlements {
		return 0, fmt.Errorf("%w: magic %#x", ErrBadEntitlements, m)
	}
	n := int(binary.BigEndian.Uint32(header[4:]))
	if n < entitlementsHeaderSize || n > maxEntitlementsBlob {
		return 0, fmt.Errorf("%w: length %d", ErrBadEntitlements, n)
	}
	return n, nil
}

// entitlementsProbeLen reads the total length from the header csops writes when the buffer is
// too small for the blob (ERANGE): xnu copies out a zeroed fake header with only the big-endian
// length filled in, so the magic is not there to check.
func entitlementsProbeLen(header []byte) (int, error) {
	if len(header) < entitlementsHeaderSize {
		return 0, fmt.Errorf("%w: %d-byte header", ErrBadEntitlements, len(header))
	}
	n := int(binary.BigEndian.Uint32(header[4:]))
	if n < entitlementsHeaderSize || n > maxEntitlementsBlob {
		return 0, fmt.Errorf("%w: length %d", ErrBadEntitlements, n)
	}
	return n, nil
}

// parseEntitlementGroups returns the application groups an entitlements blob grants: the
// strings of com.apple.security.application-groups in its XML property list (an array, or a
// lone string). A blob without that key grants none.
//
// It exists because the SDK facts this project checks its bindings against have no CFArray
// accessors, so the array SecTaskCopyValueForEntitlement returns cannot be walked safely; the
// signature's own entitlements blob (csops CS_OPS_ENTITLEMENTS_BLOB) says the same in XML.
func parseEntitlementGroups(blob []byte) ([]string, error) {
	n, err := entitlementsBlobLen(blob)
	if err != nil {
		return nil, err
	}
	if n > len(blob) {
		return nil, fmt.Errorf("%w: length %d, %d bytes present", ErrBadEntitlements, n, len(blob))
	}
	dec := xml.NewDecoder(bytes.NewReader(blob[entitlementsHeaderSize:n]))
	dec.Strict = true
	// Find the top-level <dict> inside <plist>.
	if err := descend(dec, "plist"); err != nil {
		return nil, err
	}
	if err := descend(dec, "dict"); err != nil {
		return nil, err
	}
	for {
		key, done, err := nextElement(dec)
		if err != nil || done {
			return nil, err
		}
		if key.Name.Local != "key" {
			return nil, fmt.Errorf("%w: <%s> where a <key> belongs", ErrBadEntitlements, key.Name.Local)
		}
		var name string
		if err := dec.DecodeElement(&name, &key); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadEntitlements, err)
		}
		value, done, err := nextElement(dec)
		if err != nil {
			return nil, err
		}
		if done {
			return nil, fmt.Errorf("%w: key %q has no value", ErrBadEntitlements, name)
		}
		if name != EntitlementAppGroups {
			if err := dec.Skip(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadEntitlements, err)
			}
			continue
		}
		return decodeGroupsValue(dec, value)
	}
}

func decodeGroupsValue(dec *xml.Decoder, value xml.StartElement) ([]string, error) {
	switch value.Name.Local {
	case "string":
		var s string
		if err := dec.DecodeElement(&s, &value); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadEntitlements, err)
		}
		return []string{s}, nil
	case "array":
		groups := []string{}
		for {
			item, done, err := nextElement(dec)
			if err != nil {
				return nil, err
			}
			if done {
				return groups, nil
			}
			if item.Name.Local != "string" {
				return nil, fmt.Errorf("%w: <%s> in the application-groups array", ErrBadEntitlements, item.Name.Local)
			}
			var s string
			if err := dec.DecodeElement(&s, &item); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadEntitlements, err)
			}
			groups = append(groups, s)
		}
	default:
		return nil, fmt.Errorf("%w: application groups are a <%s>, not an array of strings", ErrBadEntitlements, value.Name.Local)
	}
}

// descend reads up to the next start element, which must be named want.
func descend(dec *xml.Decoder, want string) error {
	el, done, err := nextElement(dec)
	if err != nil {
		return err
	}
	if done || el.Name.Local != want {
		return fmt.Errorf("%w: no <%s>", ErrBadEntitlements, want)
	}
	return nil
}

// nextElement returns the next start element at this level, or done at the enclosing element's
// end. Character data, comments, directives and processing instructions between are skipped.
func nextElement(dec *xml.Decoder) (el xml.StartElement, done bool, err error) {
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return el, true, nil
		}
		if err != nil {
			return el, false, fmt.Errorf("%w: %v", ErrBadEntitlements, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, false, nil
		case xml.EndElement:
			return el, true, nil
		}
	}
}
