package sandboxcheck

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func entitlementsBlobOf(plist string) []byte {
	b := make([]byte, entitlementsHeaderSize, entitlementsHeaderSize+len(plist))
	binary.BigEndian.PutUint32(b, csMagicEmbeddedEntitlements)
	binary.BigEndian.PutUint32(b[4:], uint32(entitlementsHeaderSize+len(plist)))
	return append(b, plist...)
}

const plistHead = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
`

func TestParseEntitlementGroups(t *testing.T) {
	cases := []struct {
		name  string
		plist string
		want  []string
		bad   bool
	}{
		{name: "array among other keys", plist: plistHead + `<dict>
	<key>com.apple.security.app-sandbox</key>
	<true/>
	<key>com.apple.security.temporary-exception.mach-lookup.global-name</key>
	<array><string>com.example.x</string><dict><key>k</key><string>v</string></dict></array>
	<key>com.apple.security.application-groups</key>
	<array>
		<string>group.com.example.app</string>
		<string>ABCDE12345.com.example.shared</string>
	</array>
	<key>later</key><integer>1</integer>
</dict>
</plist>`, want: []string{"group.com.example.app", "ABCDE12345.com.example.shared"}},
		{name: "lone string", plist: plistHead + `<dict><key>com.apple.security.application-groups</key><string>group.com.example</string></dict></plist>`,
			want: []string{"group.com.example"}},
		{name: "empty array", plist: plistHead + `<dict><key>com.apple.security.application-groups</key><array/></dict></plist>`, want: []string{}},
		{name: "no such key", plist: plistHead + `<dict><key>com.apple.security.app-sandbox</key><true/></dict></plist>`},
		{name: "empty dict", plist: plistHead + `<dict/></plist>`},
		{name: "not a plist", plist: `<html></html>`, bad: true},
		{name: "groups are a number", plist: plistHead + `<dict><key>com.apple.security.application-groups</key><integer>3</integer></dict></plist>`, bad: true},
		{name: "array of dicts", plist: plistHead + `<dict><key>com.apple.security.application-groups</key><array><dict/></array></dict></plist>`, bad: true},
		{name: "key without value", plist: plistHead + `<dict><key>com.apple.security.application-groups</key></dict></plist>`, bad: true},
		{name: "value without key", plist: plistHead + `<dict><string>x</string></dict></plist>`, bad: true},
		{name: "truncated", plist: plistHead + `<dict><key>com.apple.security.application-groups</key><array><string>gr`, bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseEntitlementGroups(entitlementsBlobOf(tc.plist))
			if tc.bad {
				require.ErrorIs(t, err, ErrBadEntitlements)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// When the buffer is too small, xnu's csops copies out a zeroed header with only the length.
func TestEntitlementsProbeLenReadsXNUFakeHeader(t *testing.T) {
	header := make([]byte, entitlementsHeaderSize)
	binary.BigEndian.PutUint32(header[4:], 612)
	n, err := entitlementsProbeLen(header)
	require.NoError(t, err)
	require.Equal(t, 612, n)
	binary.BigEndian.PutUint32(header[4:], 3)
	_, err = entitlementsProbeLen(header)
	require.ErrorIs(t, err, ErrBadEntitlements)
}

func TestParseEntitlementGroupsRejectsBadHeaders(t *testing.T) {
	good := entitlementsBlobOf(plistHead + `<dict/></plist>`)
	wrongMagic := append([]byte(nil), good...)
	wrongMagic[0] = 0
	tooLong := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(tooLong[4:], uint32(len(good)+1))
	tooShort := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(tooShort[4:], 4)
	huge := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(huge[4:], maxEntitlementsBlob+1)
	for name, blob := range map[string][]byte{"empty": nil, "header only": good[:7], "magic": wrongMagic,
		"length past the end": tooLong, "length inside the header": tooShort, "huge": huge} {
		_, err := parseEntitlementGroups(blob)
		require.ErrorIs(t, err, ErrBadEntitlements, name)
	}
}

func FuzzParseEntitlementGroups(f *testing.F) {
	f.Add(entitlementsBlobOf(plistHead + `<dict><key>com.apple.security.application-groups</key><array><string>group.a.b</string></array></dict></plist>`))
	f.Add(entitlementsBlobOf(plistHead + `<dict><key>a</key><array><array/></array></dict></plist>`))
	f.Add([]byte{0xfa, 0xde, 0x71, 0x71, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, blob []byte) {
		groups, err := parseEntitlementGroups(blob)
		if err != nil {
			require.ErrorIs(t, err, ErrBadEntitlements)
			require.Nil(t, groups)
		}
	})
}
