//go:build linux

package libsystemdouble

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Apple's Code Signing Requirement Language, as SecRequirementCreateWithString reads one
// requirement, and its evaluation against a Signature the test gives a process.
//
// The grammar is Security's (libsecurity_codesigning requirements.grammar; its generated
// RequirementParser.cpp names every rule below), the meaning its interpreter's
// (reqinterpreter.cpp) and the Code Signing Guide's "Code Signing Requirement Language":
//
//	expr      = term { "or" term }
//	term      = primary { "and" primary }
//	primary   = "!" primary | "(" expr ")" | "always" | "true" | "never" | "false"
//	          | "identifier" [eql] string | "cdhash" [eql] hash | "platform" [eql] integer
//	          | "info" "[" string "]" match | "entitlement" "[" string "]" match
//	          | "anchor" "apple" [ "generic" | string ] | "anchor" "generic" "apple"
//	          | ("anchor" | "certificate" | "cert") "trusted"
//	          | ("certificate" | "cert") slot ( "trusted" | slotspec ) | "anchor" slotspec
//	          | "(" string ")"                             (named code: never met here)
//	slot      = integer | "-" integer | "leaf" | "root"
//	slotspec  = [eql] hash | "[" string "]" match       (subject.X, field.OID, extension.OID, policy.OID)
//	match     = [ "exists" ] | eql ["*"] value ["*"] | "~" value | "<" value | ">" value | "<=" value | ">=" value
//	eql       = "=" | "=="
//	string    = "quoted, with \" and \\ escapes" | dotted.key.of-letters_digits
//	hash      = H"40 hex digits" (a SHA-1, as Security's hashString requires)
//	value     = string | 0xHEX
//
// A requirement may end in ";". "!" binds tighter than "and", which binds tighter than "or".
// Comments are "#" or "//" to the end of the line, and "/* ... */". Keywords are reserved: an
// unquoted "and" is no identifier. What the double does not model is an error, as in Security
// when the thing is missing: an anchor or certificate given as a file path (Security loads and
// hashes the file), and a requirement set ("designated => ..."), which only
// SecRequirementsCreateWithString takes.

// Anchor is what a process's certificate chain is anchored in, as the requirement language's
// anchor checks see it.
type Anchor int

const (
	// AnchorNone: no Apple anchor (ad hoc, or a chain of the test's own).
	AnchorNone Anchor = iota
	// AnchorAppleGeneric: a chain to Apple's root through a developer certificate Apple issued
	// (Developer ID, Apple Development, Mac App Store): `anchor apple generic` holds, `anchor
	// apple` does not.
	AnchorAppleGeneric
	// AnchorApple: Apple's own code: both `anchor apple` and `anchor apple generic` hold.
	AnchorApple
)

// Certificate is one certificate of a signature's chain, as requirements read it.
type Certificate struct {
	// Subject holds the subject's fields by name ("CN", "OU", "O", ...): `certificate
	// leaf[subject.OU] = "TEAMID"`.
	Subject map[string]string
	// Fields holds the extensions by dotted OID, with their values ("" for one that only
	// exists): `certificate leaf[field.1.2.840.113635.100.6.1.13]`; "extension." reads the same.
	Fields map[string]string
	// Policies holds the certificate policies by dotted OID: `certificate 1[policy.OID]`.
	Policies map[string]string
	// SHA1 is the certificate's hash: `certificate leaf = H"…"`, `anchor = H"…"`.
	SHA1 []byte
	// Trusted: the trust settings approve it (`certificate leaf trusted`).
	Trusted bool
}

// reqNode is a parsed requirement: an expression tree.
type reqNode struct {
	op   reqOp
	kids []*reqNode // not, and, or
	str  string     // identifier, info/entitlement key, subject./field./policy. key, named anchor or code
	hash []byte     // cdhash, certificate hash
	num  int        // platform; certificate slot
	m    matchSpec  // info, entitlement, certificate field
}

type reqOp int

const (
	opFalse reqOp = iota
	opTrue
	opIdent
	opAppleAnchor
	opAppleGenericAnchor
	opNamedAnchor
	opAnchorHash
	opTrustedCert
	opTrustedCerts
	opCertField
	opInfo
	opEntitlement
	opCDHash
	opPlatform
	opNamedCode
	opNot
	opAnd
	opOr
)

type matchOp int

const (
	matchExists matchOp = iota
	matchEqual
	matchContains
	matchBeginsWith
	matchEndsWith
	matchLess
	matchGreater
	matchLessEqual
	matchGreaterEqual
)

type matchSpec struct {
	op    matchOp
	value string
}

// Certificate slots: 0 is the leaf, -1 the anchor (Security's leafCert and anchorCert); a
// positive n counts from the leaf, a negative -n from the anchor.
const (
	slotLeaf   = 0
	slotAnchor = -1
)

// token kinds of the lexer.
type tokKind int

const (
	tEOF    tokKind = iota
	tWord           // a keyword or an unquoted dotted key
	tString         // a quoted string
	tHash           // H"…"
	tHex            // 0x…
	tInt
	tPunct // ( ) [ ] ! = == * ~ < > <= >= - ; =>
	tPath  // an unquoted path, /…
)

type token struct {
	kind tokKind
	text string
}

var keywords = map[string]bool{
	"guest": true, "host": true, "designated": true, "library": true, "plugin": true,
	"or": true, "and": true, "always": true, "true": true, "never": true, "false": true,
	"identifier": true, "cdhash": true, "platform": true, "anchor": true, "apple": true,
	"generic": true, "certificate": true, "cert": true, "trusted": true, "info": true,
	"entitlement": true, "exists": true, "leaf": true, "root": true,
}

// lex splits a requirement into tokens, or fails.
func lex(text string) ([]token, error) {
	var out []token
	i := 0
	isKey := func(c byte) bool {
		return c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i < len(text) {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '#' || strings.HasPrefix(text[i:], "//"):
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment")
			}
			i += 2 + end + 2
		case c == '"':
			s, n, err := lexString(text[i:])
			if err != nil {
				return nil, err
			}
			out = append(out, token{tString, s})
			i += n
		case c == 'H' && i+1 < len(text) && text[i+1] == '"':
			end := strings.IndexByte(text[i+2:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated hash constant")
			}
			out = append(out, token{tHash, text[i+2 : i+2+end]})
			i += 2 + end + 1
		case c == '0' && i+1 < len(text) && (text[i+1] == 'x' || text[i+1] == 'X'):
			j := i + 2
			for j < len(text) && isHex(text[j]) {
				j++
			}
			if j == i+2 {
				return nil, fmt.Errorf("empty hex constant")
			}
			out = append(out, token{tHex, text[i+2 : j]})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(text) && text[j] >= '0' && text[j] <= '9' {
				j++
			}
			if j < len(text) && isKey(text[j]) {
				// A dotted key may start with a digit ("1.2.840" inside brackets).
				for j < len(text) && isKey(text[j]) {
					j++
				}
				out = append(out, token{tWord, text[i:j]})
			} else {
				out = append(out, token{tInt, text[i:j]})
			}
			i = j
		case c == '/':
			j := i
			for j < len(text) && text[j] != ' ' && text[j] != '\t' && text[j] != '\n' && text[j] != ')' {
				j++
			}
			out = append(out, token{tPath, text[i:j]})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(text) && isKey(text[j]) {
				j++
			}
			out = append(out, token{tWord, text[i:j]})
			i = j
		default:
			for _, p := range []string{"=>", "==", "<=", ">=", "(", ")", "[", "]", "!", "=", "*", "~", "<", ">", "-", ";"} {
				if strings.HasPrefix(text[i:], p) {
					out = append(out, token{tPunct, p})
					i += len(p)
					goto next
				}
			}
			return nil, fmt.Errorf("unexpected character %q", c)
		next:
		}
	}
	return append(out, token{kind: tEOF}), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// lexString reads a quoted string at the start of s: its value and how many bytes it took.
func lexString(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

type reqParser struct {
	toks []token
	pos  int
}

func (p *reqParser) peek() token { return p.toks[p.pos] }
func (p *reqParser) peek2() token {
	if p.pos+1 < len(p.toks) {
		return p.toks[p.pos+1]
	}
	return token{kind: tEOF}
}
func (p *reqParser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}
func (p *reqParser) isWord(w string) bool  { t := p.peek(); return t.kind == tWord && t.text == w }
func (p *reqParser) isPunct(s string) bool { t := p.peek(); return t.kind == tPunct && t.text == s }

func (p *reqParser) expectPunct(s string) error {
	if !p.isPunct(s) {
		return fmt.Errorf("expected %q, got %q", s, p.peek().text)
	}
	p.next()
	return nil
}

// parseRequirementText parses one requirement, as SecRequirementCreateWithString does, or fails
// with what a syntax error Security would report.
func parseRequirementText(text string) (*reqNode, error) {
	toks, err := lex(text)
	if err != nil {
		return nil, err
	}
	p := &reqParser{toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	for p.isPunct(";") {
		p.next()
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, fmt.Errorf("unexpected %q after the requirement", t.text)
	}
	return n, nil
}

// maxDepth bounds nesting, so that a hostile text cannot exhaust the stack.
const maxDepth = 256

func (p *reqParser) expr(depth int) (*reqNode, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested too deeply")
	}
	n, err := p.term(depth)
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.next()
		r, err := p.term(depth)
		if err != nil {
			return nil, err
		}
		n = &reqNode{op: opOr, kids: []*reqNode{n, r}}
	}
	return n, nil
}

func (p *reqParser) term(depth int) (*reqNode, error) {
	n, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.next()
		r, err := p.primary(depth)
		if err != nil {
			return nil, err
		}
		n = &reqNode{op: opAnd, kids: []*reqNode{n, r}}
	}
	return n, nil
}

func (p *reqParser) primary(depth int) (*reqNode, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested too deeply")
	}
	t := p.peek()
	if t.kind == tPunct {
		switch t.text {
		case "!":
			p.next()
			k, err := p.primary(depth + 1)
			if err != nil {
				return nil, err
			}
			return &reqNode{op: opNot, kids: []*reqNode{k}}, nil
		case "(":
			// "(" string ")" names code; "(" expr ")" groups.
			if n := p.peek2(); n.kind == tString || n.kind == tWord && !keywords[n.text] {
				p.next()
				name := p.next().text
				if err := p.expectPunct(")"); err != nil {
					return nil, err
				}
				return &reqNode{op: opNamedCode, str: name}, nil
			}
			p.next()
			n, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := p.expectPunct(")"); err != nil {
				return nil, err
			}
			return n, nil
		}
		return nil, fmt.Errorf("unexpected %q", t.text)
	}
	if t.kind != tWord {
		return nil, fmt.Errorf("unexpected %q", t.text)
	}
	switch t.text {
	case "always", "true":
		p.next()
		return &reqNode{op: opTrue}, nil
	case "never", "false":
		p.next()
		return &reqNode{op: opFalse}, nil
	case "identifier":
		p.next()
		p.eql()
		s, err := p.stringValue()
		if err != nil {
			return nil, fmt.Errorf("identifier: %w", err)
		}
		return &reqNode{op: opIdent, str: s}, nil
	case "cdhash":
		p.next()
		p.eql()
		h, err := p.hash()
		if err != nil {
			return nil, fmt.Errorf("cdhash: %w", err)
		}
		return &reqNode{op: opCDHash, hash: h}, nil
	case "platform":
		p.next()
		p.eql()
		n, err := p.integer()
		if err != nil {
			return nil, fmt.Errorf("platform: %w", err)
		}
		return &reqNode{op: opPlatform, num: n}, nil
	case "info", "entitlement":
		p.next()
		key, err := p.bracketKey()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.text, err)
		}
		m, err := p.matchSuffix()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.text, err)
		}
		op := opInfo
		if t.text == "entitlement" {
			op = opEntitlement
		}
		return &reqNode{op: op, str: key, m: m}, nil
	case "anchor", "certificate", "cert":
		return p.certspec()
	}
	return nil, fmt.Errorf("unexpected %q", t.text)
}

// certspec is Security's certspec rule.
func (p *reqParser) certspec() (*reqNode, error) {
	first := p.next().text
	second := p.peek()
	switch {
	case first == "anchor" && second.kind == tWord && second.text == "apple":
		p.next()
		switch n := p.peek(); {
		case n.kind == tWord && n.text == "generic":
			p.next()
			return &reqNode{op: opAppleGenericAnchor}, nil
		case n.kind == tString || n.kind == tWord && !keywords[n.text]:
			p.next()
			return &reqNode{op: opNamedAnchor, str: n.text}, nil
		}
		return &reqNode{op: opAppleAnchor}, nil
	case first == "anchor" && second.kind == tWord && second.text == "generic":
		p.next()
		if !p.isWord("apple") {
			return nil, fmt.Errorf(`"anchor generic" must be followed by "apple"`)
		}
		p.next()
		return &reqNode{op: opAppleGenericAnchor}, nil
	case second.kind == tWord && second.text == "trusted":
		p.next()
		return &reqNode{op: opTrustedCerts}, nil
	case first == "anchor":
		return p.slotspec(slotAnchor)
	}
	slot, err := p.certSlot()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", first, err)
	}
	if p.isWord("trusted") {
		p.next()
		return &reqNode{op: opTrustedCert, num: slot}, nil
	}
	return p.slotspec(slot)
}

func (p *reqParser) certSlot() (int, error) {
	t := p.next()
	switch {
	case t.kind == tWord && t.text == "leaf":
		return slotLeaf, nil
	case t.kind == tWord && t.text == "root":
		return slotAnchor, nil
	case t.kind == tPunct && t.text == "-":
		n, err := p.integer()
		return -n, err
	case t.kind == tInt:
		return atoiSmall(t.text)
	}
	return 0, fmt.Errorf("expected a certificate slot (leaf, root, or a number), got %q", t.text)
}

// slotspec is `[eql] hash` or `[key] match` for the certificate at slot.
func (p *reqParser) slotspec(slot int) (*reqNode, error) {
	if p.isPunct("[") {
		key, err := p.bracketKey()
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(key, "subject."), strings.HasPrefix(key, "field."),
			strings.HasPrefix(key, "extension."), strings.HasPrefix(key, "policy."):
		default:
			return nil, fmt.Errorf("%s: unrecognized certificate field", key)
		}
		if _, oid, ok := strings.Cut(key, "."); ok && !strings.HasPrefix(key, "subject.") && !validOID(oid) {
			return nil, fmt.Errorf("%s: not an OID", key)
		}
		m, err := p.matchSuffix()
		if err != nil {
			return nil, err
		}
		return &reqNode{op: opCertField, num: slot, str: key, m: m}, nil
	}
	p.eql()
	if t := p.peek(); t.kind == tString || t.kind == tPath || t.kind == tWord {
		// Security loads the certificate from the file and hashes it: the double has no files.
		return nil, fmt.Errorf("%s: a certificate given by path is not modelled (give its hash)", t.text)
	}
	h, err := p.hash()
	if err != nil {
		return nil, err
	}
	return &reqNode{op: opAnchorHash, num: slot, hash: h}, nil
}

func validOID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, part := range parts {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
		}
	}
	return true
}

// eql skips an optional "=" or "==".
func (p *reqParser) eql() {
	if p.isPunct("=") || p.isPunct("==") {
		p.next()
	}
}

// stringValue is a quoted string or an unquoted dotted key that is no keyword.
func (p *reqParser) stringValue() (string, error) {
	t := p.next()
	switch {
	case t.kind == tString:
		return t.text, nil
	case t.kind == tWord && !keywords[t.text]:
		return t.text, nil
	}
	return "", fmt.Errorf("expected a string, got %q", t.text)
}

func (p *reqParser) hash() ([]byte, error) {
	t := p.next()
	if t.kind != tHash {
		return nil, fmt.Errorf(`expected a hash constant H"…", got %q`, t.text)
	}
	if len(t.text) != 40 {
		return nil, fmt.Errorf("invalid hash length") // Security's hashString: a SHA-1
	}
	h, err := hex.DecodeString(t.text)
	if err != nil {
		return nil, fmt.Errorf("hash constant: %w", err)
	}
	return h, nil
}

func (p *reqParser) integer() (int, error) {
	t := p.next()
	if t.kind != tInt {
		return 0, fmt.Errorf("expected an integer, got %q", t.text)
	}
	return atoiSmall(t.text)
}

func atoiSmall(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return int(n), nil
}

func (p *reqParser) bracketKey() (string, error) {
	if err := p.expectPunct("["); err != nil {
		return "", err
	}
	s, err := p.stringValue()
	if err != nil {
		return "", err
	}
	if err := p.expectPunct("]"); err != nil {
		return "", err
	}
	return s, nil
}

// dataValue is a string, or a hex constant as the bytes it spells.
func (p *reqParser) dataValue() (string, error) {
	if t := p.peek(); t.kind == tHex {
		p.next()
		if len(t.text)%2 != 0 {
			return "", fmt.Errorf("odd number of digits")
		}
		b, err := hex.DecodeString(t.text)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	return p.stringValue()
}

// matchSuffix is Security's match_suffix rule.
func (p *reqParser) matchSuffix() (matchSpec, error) {
	if p.isWord("exists") {
		p.next()
		return matchSpec{op: matchExists}, nil
	}
	t := p.peek()
	if t.kind != tPunct {
		return matchSpec{op: matchExists}, nil // nothing: existence
	}
	switch t.text {
	case "=", "==":
		p.next()
		op := matchEqual
		if p.isPunct("*") {
			p.next()
			op = matchEndsWith
		}
		v, err := p.dataValue()
		if err != nil {
			return matchSpec{}, err
		}
		if p.isPunct("*") {
			p.next()
			if op == matchEndsWith {
				op = matchContains
			} else {
				op = matchBeginsWith
			}
		}
		return matchSpec{op: op, value: v}, nil
	case "~", "<", ">", "<=", ">=":
		p.next()
		v, err := p.dataValue()
		if err != nil {
			return matchSpec{}, err
		}
		op := map[string]matchOp{"~": matchContains, "<": matchLess, ">": matchGreater, "<=": matchLessEqual, ">=": matchGreaterEqual}[t.text]
		return matchSpec{op: op, value: v}, nil
	}
	return matchSpec{op: matchExists}, nil // ")" or ";": existence, and the caller goes on
}

// String writes the requirement back in the language (fully parenthesized, strings quoted), so
// that what it prints parses to the same tree.
func (n *reqNode) String() string {
	var b strings.Builder
	n.write(&b)
	return b.String()
}

func (n *reqNode) write(b *strings.Builder) {
	q := strconv.Quote
	switch n.op {
	case opFalse:
		b.WriteString("never")
	case opTrue:
		b.WriteString("always")
	case opIdent:
		b.WriteString("identifier " + quoteReq(n.str))
	case opAppleAnchor:
		b.WriteString("anchor apple")
	case opAppleGenericAnchor:
		b.WriteString("anchor apple generic")
	case opNamedAnchor:
		b.WriteString("anchor apple " + quoteReq(n.str))
	case opAnchorHash:
		b.WriteString("certificate " + slotName(n.num) + ` = H"` + hex.EncodeToString(n.hash) + `"`)
	case opTrustedCert:
		b.WriteString("certificate " + slotName(n.num) + " trusted")
	case opTrustedCerts:
		b.WriteString("anchor trusted")
	case opCertField:
		b.WriteString("certificate " + slotName(n.num) + "[" + quoteReq(n.str) + "]" + n.m.String())
	case opInfo:
		b.WriteString("info[" + quoteReq(n.str) + "]" + n.m.String())
	case opEntitlement:
		b.WriteString("entitlement[" + quoteReq(n.str) + "]" + n.m.String())
	case opCDHash:
		b.WriteString(`cdhash H"` + hex.EncodeToString(n.hash) + `"`)
	case opPlatform:
		b.WriteString("platform = " + strconv.Itoa(n.num))
	case opNamedCode:
		b.WriteString("(" + quoteReq(n.str) + ")")
	case opNot:
		b.WriteString("!(")
		n.kids[0].write(b)
		b.WriteString(")")
	case opAnd, opOr:
		word := " and "
		if n.op == opOr {
			word = " or "
		}
		b.WriteString("(")
		n.kids[0].write(b)
		b.WriteString(word)
		n.kids[1].write(b)
		b.WriteString(")")
	default:
		b.WriteString(q("?"))
	}
}

func slotName(n int) string {
	switch n {
	case slotLeaf:
		return "leaf"
	case slotAnchor:
		return "root"
	}
	if n < 0 {
		return "-" + strconv.Itoa(-n)
	}
	return strconv.Itoa(n)
}

// quoteReq quotes s as the language's lexer reads a string: only \" and \\ are escaped.
func quoteReq(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (m matchSpec) String() string {
	v := quoteReq(m.value)
	switch m.op {
	case matchEqual:
		return " = " + v
	case matchContains:
		return " = *" + v + "*"
	case matchBeginsWith:
		return " = " + v + "*"
	case matchEndsWith:
		return " = *" + v
	case matchLess:
		return " < " + v
	case matchGreater:
		return " > " + v
	case matchLessEqual:
		return " <= " + v
	case matchGreaterEqual:
		return " >= " + v
	}
	return " exists"
}

// satisfies evaluates the requirement against sig, as Security's interpreter does: every
// operator evaluates both sides (no order is defined), and what the signature lacks fails.
func (n *reqNode) satisfies(sig *Signature) bool {
	switch n.op {
	case opFalse:
		return false
	case opTrue:
		return true
	case opIdent:
		return sig.Identifier == n.str
	case opAppleAnchor:
		return sig.Anchor == AnchorApple
	case opAppleGenericAnchor:
		return sig.Anchor == AnchorApple || sig.Anchor == AnchorAppleGeneric
	case opNamedAnchor, opNamedCode:
		return false // the double has no named anchors or code
	case opAnchorHash:
		c := sig.cert(n.num)
		return c != nil && len(c.SHA1) > 0 && bytes.Equal(c.SHA1, n.hash)
	case opTrustedCert:
		c := sig.cert(n.num)
		return c != nil && c.Trusted
	case opTrustedCerts:
		for _, c := range sig.Certificates {
			if c.Trusted {
				return true
			}
		}
		return false
	case opCertField:
		c := sig.cert(n.num)
		if c == nil {
			return false
		}
		kind, key, _ := strings.Cut(n.str, ".")
		var m map[string]string
		switch kind {
		case "subject":
			m = c.Subject
		case "field", "extension":
			m = c.Fields
		case "policy":
			m = c.Policies
		}
		v, ok := m[key]
		return n.m.matches(v, ok)
	case opInfo:
		v, ok := sig.Info[n.str]
		return n.m.matches(v, ok)
	case opEntitlement:
		v, ok := sig.Entitlements[n.str]
		return n.m.matches(v, ok)
	case opCDHash:
		return bytes.Equal(sig.CDHash, n.hash)
	case opPlatform:
		return sig.Platform == n.num
	case opNot:
		return !n.kids[0].satisfies(sig)
	case opAnd:
		l, r := n.kids[0].satisfies(sig), n.kids[1].satisfies(sig)
		return l && r
	case opOr:
		l, r := n.kids[0].satisfies(sig), n.kids[1].satisfies(sig)
		return l || r
	}
	return false
}

// cert returns the certificate at slot (0 the leaf, -1 the anchor, n from the leaf, -n from the
// anchor), or nil.
func (s *Signature) cert(slot int) *Certificate {
	i := slot
	if slot < 0 {
		i = len(s.Certificates) + slot
	}
	if i < 0 || i >= len(s.Certificates) {
		return nil
	}
	return &s.Certificates[i]
}

// matches reports whether the value v (present when ok) meets m. The inequalities compare as
// CFStringCompare with kCFCompareNumerically does (Security's reqinterpreter.cpp, Match): runs of
// digits by their value, so "2.5" < "2.10".
func (m matchSpec) matches(v string, ok bool) bool {
	if !ok {
		return false
	}
	cmp := func() int { return compareNumerically(v, m.value) }
	switch m.op {
	case matchExists:
		return true
	case matchEqual:
		return v == m.value
	case matchContains:
		return strings.Contains(v, m.value)
	case matchBeginsWith:
		return strings.HasPrefix(v, m.value)
	case matchEndsWith:
		return strings.HasSuffix(v, m.value)
	case matchLess:
		return cmp() < 0
	case matchGreater:
		return cmp() > 0
	case matchLessEqual:
		return cmp() <= 0
	case matchGreaterEqual:
		return cmp() >= 0
	}
	return false
}

// compareNumerically orders a and b by bytes, except that runs of decimal digits compare by
// their value.
func compareNumerically(a, b string) int {
	digits := func(s string, i int) int {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if isDigit(a[i]) && isDigit(b[j]) {
			ei, ej := digits(a, i), digits(b, j)
			x := strings.TrimLeft(a[i:ei], "0")
			y := strings.TrimLeft(b[j:ej], "0")
			if len(x) != len(y) {
				if len(x) < len(y) {
					return -1
				}
				return 1
			}
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
			i, j = ei, ej
			continue
		}
		if a[i] != b[j] {
			if a[i] < b[j] {
				return -1
			}
			return 1
		}
		i, j = i+1, j+1
	}
	switch {
	case len(a)-i < len(b)-j:
		return -1
	case len(a)-i > len(b)-j:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
