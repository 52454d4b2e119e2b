package sandboxcheck

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest service name launchd accepts, in bytes. Names travel to launchd as a
// name_t, which is char[128] including the terminating NUL, so one byte of the 128 is not the
// caller's.
const MaxNameLen = 127

// maxGroupLen is the longest group identifier that still leaves room for "." and one more byte in
// a name of MaxNameLen bytes; a longer group could never prefix a registrable name.
const maxGroupLen = MaxNameLen - 2

// groupPrefix begins the application-group identifiers that iOS and macOS share. The sandbox
// compares it byte for byte, so the spelling is exact and lowercase.
const groupPrefix = "group."

// teamIDLen is the length of an Apple Developer team ID, the other form a macOS group may take.
const teamIDLen = 10

// Sentinel rule errors. Every *NameError wraps exactly one of them, so callers can branch with
// errors.Is on which rule broke without parsing messages.
var (
	// ErrEmptyName reports an empty service name, which launchd cannot register or look up.
	ErrEmptyName = errors.New("sandboxcheck: empty service name")

	// ErrNameTooLong reports a name of more than MaxNameLen bytes: it does not fit in launchd's
	// name_t, so it could not be registered under the name the caller meant.
	ErrNameTooLong = errors.New("sandboxcheck: service name too long")

	// ErrInvalidUTF8 reports a name that is not valid UTF-8. launchd compares bytes, but such a
	// name cannot be printed, logged or typed back faithfully, and from Go it is almost always
	// the result of a slicing or decoding mistake rather than intent.
	ErrInvalidUTF8 = errors.New("sandboxcheck: service name is not valid UTF-8")

	// ErrNameHasNUL reports a NUL byte in the name. launchd receives the name as a C string, so
	// a NUL would silently cut it short and register a different, shorter name.
	ErrNameHasNUL = errors.New("sandboxcheck: service name contains a NUL byte")

	// ErrOutsideGroups reports a name that starts with none of the given application groups
	// followed by a period; the sandbox would refuse it with BOOTSTRAP_NOT_PRIVILEGED (1100).
	ErrOutsideGroups = errors.New("sandboxcheck: service name outside the application groups")

	// ErrEmptyRest reports a name that is a group itself, or a group and a period with nothing
	// after it. The sandbox requires the group, a period and at least one more byte, so it
	// refuses these as it refuses names outside the groups; they get their own rule because the
	// fix is to add a component, not to change the prefix.
	ErrEmptyRest = errors.New("sandboxcheck: nothing after the application group")

	// ErrBadGroup reports a malformed application-group identifier. A name cannot be checked
	// against a group the sandbox would never grant, and a typo in the group (in code or in the
	// entitlements) is the usual cause of a surprising 1100.
	ErrBadGroup = errors.New("sandboxcheck: malformed application group identifier")
)

// NameError reports why a service name, or a group identifier, is not acceptable. It carries the
// caller's input unabridged and, where one can be built, a corrected name, because launchd itself
// only answers with an error code and a terse log line.
type NameError struct {
	Name    string   // the name as given, never truncated (for ValidateGroup: the group)
	Groups  []string // the groups it was checked against (a copy of the caller's slice)
	Rule    error    // one of the Err* sentinels
	Group   string   // for ErrBadGroup: the offending group; for prefix problems: the closest group, if any
	Detail  string   // what exactly is wrong, in one sentence
	Example string   // a valid name built from the caller's own name and groups; "" when none can be built
}

// Error says which rule broke, quotes the full name (never truncated: a cut name hides the very
// byte that is wrong), and ends with the example when there is one.
func (e *NameError) Error() string {
	var b strings.Builder
	b.WriteString("sandboxcheck: ")
	switch e.Rule {
	case ErrEmptyName:
		fmt.Fprintf(&b, "service name %q is empty", e.Name)
	case ErrNameTooLong:
		fmt.Fprintf(&b, "service name %q is too long", e.Name)
	case ErrInvalidUTF8:
		fmt.Fprintf(&b, "service name %q is not valid UTF-8", e.Name)
	case ErrNameHasNUL:
		fmt.Fprintf(&b, "service name %q contains a NUL byte", e.Name)
	case ErrOutsideGroups:
		fmt.Fprintf(&b, "service name %q is outside the application groups %v", e.Name, e.Groups)
	case ErrEmptyRest:
		if e.Name == e.Group { // quoting the group would quote the name twice
			fmt.Fprintf(&b, "service name %q is an application group, with nothing after it", e.Name)
		} else {
			fmt.Fprintf(&b, "service name %q has nothing after application group %q", e.Name, e.Group)
		}
	case ErrBadGroup:
		if len(e.Groups) == 0 || e.Group == e.Name {
			fmt.Fprintf(&b, "application group %q is malformed", e.Name)
		} else {
			fmt.Fprintf(&b, "application group %q, given for service name %q, is malformed", e.Group, e.Name)
		}
	default:
		fmt.Fprintf(&b, "service name %q is not acceptable", e.Name)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Example != "" {
		fmt.Fprintf(&b, "; use e.g. %q", e.Example)
	}
	return b.String()
}

// Unwrap returns the rule, so that errors.Is(err, ErrOutsideGroups) and the like work through
// any wrapping the caller adds.
func (e *NameError) Unwrap() error { return e.Rule }

// ValidateName reports whether launchd would accept name for registration by a sandboxed process
// that holds the given application groups. With no groups, only the rules that apply to every
// name are checked (non-empty, valid UTF-8, no NUL, at most MaxNameLen bytes), which suits an
// unsandboxed process. The result is nil or a *NameError. The rules are checked in a fixed
// order (empty, UTF-8, NUL, length, then the groups) and only the first one broken is reported,
// since a later rule means little for a name that breaks an earlier one.
//
// The check is offline: it predicts launchd's answer so that a misnamed service fails with an
// explanation at start-up instead of BOOTSTRAP_NOT_PRIVILEGED at registration.
func ValidateName(name string, groups ...string) error {
	if e := validateName(name, groups); e != nil {
		return e
	}
	return nil
}

// validateName is ValidateName returning the concrete type, so that it never yields a typed nil
// inside a non-nil error.
func validateName(name string, groups []string) *NameError {
	e := diagnose(name, groups)
	if e == nil {
		return nil
	}
	e.Name = name
	e.Groups = slices.Clone(groups)
	// An example that is itself refused would send the caller round in circles; the builders
	// below are meant never to produce one, and this makes it a guarantee.
	if e.Example != "" && diagnose(e.Example, groups) != nil {
		e.Example = ""
	}
	return e
}

// diagnose applies the rules in order and fills Rule, Group, Detail and Example of the first
// failure; the caller fills the rest.
func diagnose(name string, groups []string) *NameError {
	if name == "" {
		return &NameError{Rule: ErrEmptyName, Detail: "launchd needs at least one byte to register"}
	}
	if i := invalidUTF8At(name); i >= 0 {
		return &NameError{Rule: ErrInvalidUTF8,
			Detail: fmt.Sprintf("byte %d (0x%02x) does not begin a valid UTF-8 sequence", i, name[i])}
	}
	if i := strings.IndexByte(name, 0); i >= 0 {
		return &NameError{Rule: ErrNameHasNUL,
			Detail: fmt.Sprintf("byte %d is NUL, where launchd's C string would end", i)}
	}
	if len(name) > MaxNameLen {
		e := &NameError{Rule: ErrNameTooLong,
			Detail: fmt.Sprintf("%d bytes, %d over the limit of %d", len(name), len(name)-MaxNameLen, MaxNameLen)}
		if len(groups) > 0 && allGroupsValid(groups) {
			e.Group, e.Example = shortened(name, groups)
		}
		return e
	}
	if len(groups) == 0 {
		return nil
	}
	for _, g := range groups {
		if d := groupProblem(g); d != "" {
			return &NameError{Rule: ErrBadGroup, Group: g, Detail: d}
		}
	}
	for _, g := range groups {
		if HasGroupPrefix(name, g) {
			return nil
		}
	}
	return outside(name, groups)
}

// invalidUTF8At returns the offset of the first byte that does not begin a valid UTF-8 sequence
// in s, or -1. utf8.ValidString says only whether there is one; the offset is what the caller
// needs to find it.
func invalidUTF8At(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// allGroupsValid reports whether every group is well formed, which any example must rely on: an
// example is only useful if ValidateName would accept it with the same groups.
func allGroupsValid(groups []string) bool {
	for _, g := range groups {
		if groupProblem(g) != "" {
			return false
		}
	}
	return true
}

// shortened builds, for a name that is too long, a name that fits: the matching group (or the
// first one) and as much of the name's own suffix as fits.
func shortened(name string, groups []string) (group, example string) {
	for _, g := range groups {
		if HasGroupPrefix(name, g) {
			return g, withSuffix(g, name[len(g)+1:])
		}
	}
	return "", withSuffix(groups[0], suffixOf(name))
}

// outside explains a name, already known to be well formed, that no (valid) group prefixes. The
// checks run from the most specific diagnosis to the least, each over all groups, so that a near
// miss on the second group beats a vague answer about the first.
func outside(name string, groups []string) *NameError {
	for _, g := range groups {
		if name == g || name == g+"." {
			// The message names the name and the group already: the detail repeats neither.
			d := "add a '.' and a name after the group"
			if name != g {
				d = "nothing follows the '.' after the group; add a name"
			}
			return &NameError{Rule: ErrEmptyRest, Group: g, Detail: d, Example: withSuffix(g, "service")}
		}
	}
	out := func(g, detail, example string) *NameError {
		return &NameError{Rule: ErrOutsideGroups, Group: g, Detail: detail, Example: example}
	}
	// The case checks compare ASCII only: groups are ASCII, and a Unicode fold (the Kelvin sign
	// folds to 'k') would call two different byte strings the same, which the sandbox does not.
	for _, g := range groups {
		if len(name) > len(g)+1 && equalFoldASCII(name[:len(g)], g) && name[len(g)] == '.' {
			return out(g, fmt.Sprintf("it differs from group %q only in letter case", g), g+name[len(g):])
		}
	}
	for _, g := range groups {
		if len(name) > len(g) && strings.HasPrefix(name, g) {
			return out(g, fmt.Sprintf("it is missing the '.' after group %q", g), withSuffix(g, name[len(g):]))
		}
	}
	for _, g := range groups {
		if len(name) > len(g) && equalFoldASCII(name[:len(g)], g) && name[len(g)] != '.' {
			return out(g, fmt.Sprintf("it differs from group %q in letter case and is missing the '.' after it", g),
				withSuffix(g, name[len(g):]))
		}
	}
	for _, g := range groups {
		if equalFoldASCII(strings.TrimSuffix(name, "."), g) {
			return out(g, fmt.Sprintf("it differs from group %q only in letter case, and nothing follows the group", g),
				withSuffix(g, "service"))
		}
	}
	for _, g := range groups {
		if strings.HasPrefix(g, name) {
			return out(g, fmt.Sprintf("it is only the beginning of group %q; a name continues after the whole group and a '.'", g),
				withSuffix(g, "service"))
		}
	}
	for _, g := range groups {
		if i := strings.Index(name, g+"."); i > 0 && HasGroupPrefix(name[i:], g) {
			return out(g, fmt.Sprintf("it contains group %q at byte %d, but must start with it", g, i), name[i:])
		}
	}
	return out("", "it starts with none of the groups", withSuffix(groups[0], suffixOf(name)))
}

// equalFoldASCII reports whether a and b are equal when ASCII letters are compared without case.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// withSuffix joins group and suffix into a name, cutting the suffix (at a character boundary, so
// the result stays valid UTF-8) when the whole would exceed MaxNameLen. The group must be valid,
// which guarantees room for at least one byte of suffix.
func withSuffix(group, suffix string) string {
	if suffix == "" {
		suffix = "service"
	}
	room := MaxNameLen - len(group) - 1
	if room < 1 {
		return ""
	}
	if len(suffix) > room {
		cut := room
		for cut > 0 && !utf8.RuneStart(suffix[cut]) {
			cut--
		}
		suffix = suffix[:cut]
		if suffix == "" {
			suffix = "service"[:min(room, len("service"))]
		}
	}
	return group + "." + suffix
}

// suffixOf picks the part of a rejected name worth keeping in an example: its last component is
// usually the service's own name ("worker" in "com.example.worker"), and failing that the whole
// name, tidied. Characters other than ASCII letters, digits, '-' and '_' become '_', so that the
// example reads as an identifier.
func suffixOf(name string) string {
	if s := tidy(name[strings.LastIndexByte(name, '.')+1:], false); s != "" {
		return s
	}
	if s := tidy(name, true); s != "" {
		return s
	}
	return "service"
}

// tidy replaces each run of characters outside [A-Za-z0-9-_] (and '.', if keepDot) with one '_',
// trims '_' and '.' from both ends, and returns "" when no letter or digit is left.
func tidy(s string, keepDot bool) string {
	var b strings.Builder
	alnum := false
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			alnum = true
			b.WriteRune(r)
		case r == '-' || r == '_' || (keepDot && r == '.'):
			b.WriteRune(r)
		default:
			if out := b.String(); out == "" || out[len(out)-1] != '_' {
				b.WriteByte('_')
			}
		}
	}
	if !alnum {
		return ""
	}
	return strings.Trim(b.String(), "_.")
}

// ValidateGroup reports whether group is a well-formed application-group identifier: either
// "group.<reverse-DNS>" (iOS and macOS) or "<TEAMID>.<reverse-DNS>" (macOS), where TEAMID is 10
// characters A-Z or 0-9 and the reverse-DNS part has at least two non-empty labels of A-Z, a-z,
// 0-9 and '-'. The result is nil or a *NameError with Rule ErrBadGroup and Name set to group.
//
// Checking the group separately catches the mistake where it belongs: a name checked against a
// misspelt group would otherwise be reported as outside it, pointing at the wrong string.
func ValidateGroup(group string) error {
	if d := groupProblem(group); d != "" {
		return &NameError{Name: group, Rule: ErrBadGroup, Group: group, Detail: d}
	}
	return nil
}

// groupProblem returns what is wrong with group, in one sentence, or "" when it is well formed.
func groupProblem(group string) string {
	if group == "" {
		return "the group identifier is empty"
	}
	if i := invalidUTF8At(group); i >= 0 {
		return fmt.Sprintf("byte %d (0x%02x) does not begin a valid UTF-8 sequence", i, group[i])
	}
	if i := strings.IndexByte(group, 0); i >= 0 {
		return fmt.Sprintf("byte %d is NUL", i)
	}
	if len(group) > maxGroupLen {
		return fmt.Sprintf("%d bytes, too long for any service name: the group, a '.' and one more byte must fit in %d bytes",
			len(group), MaxNameLen)
	}
	var rdns string
	switch {
	case strings.HasPrefix(group, groupPrefix):
		rdns = group[len(groupPrefix):]
		if rdns == "" {
			return `nothing follows "group."; add a reverse-DNS name, as in "group.com.example"`
		}
	case len(group) >= len(groupPrefix) && equalFoldASCII(group[:len(groupPrefix)], groupPrefix):
		return fmt.Sprintf(`%q must be spelled "group." in lowercase`, group[:len(groupPrefix)])
	default:
		dot := strings.IndexByte(group, '.')
		if dot < 0 {
			return `must start with "group." or a 10-character team ID followed by '.'`
		}
		team := group[:dot]
		if !isTeamID(team) {
			if !looksLikeTeamID(team) {
				return fmt.Sprintf(`must start with "group." or a 10-character team ID, not %q`, team+".")
			}
			if len(team) == teamIDLen && isTeamID(strings.ToUpper(team)) {
				return fmt.Sprintf("team ID %q must be uppercase: %q", team, strings.ToUpper(team))
			}
			return fmt.Sprintf("team ID %q must be 10 characters A-Z or 0-9", team)
		}
		rdns = group[dot+1:]
		if rdns == "" {
			return fmt.Sprintf("nothing follows team ID %q; add a reverse-DNS name, as in %q", team, team+".com.example")
		}
	}
	labels := strings.Split(rdns, ".")
	for _, l := range labels {
		if l == "" {
			return fmt.Sprintf("empty label in reverse-DNS part %q", rdns)
		}
		for _, r := range l {
			if !isLabelRune(r) {
				return fmt.Sprintf("label %q contains %q; labels hold only A-Z, a-z, 0-9 and '-'", l, r)
			}
		}
	}
	// One label is enough: the sandbox compares prefixes, and accepts "group.x" as it accepts
	// "group.com.example" (the reverse-DNS form is Apple's convention, not a rule it enforces).
	return ""
}

func isLabelRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-'
}

// isTeamID reports whether s has the shape Apple gives team IDs: 10 characters, A-Z and 0-9.
func isTeamID(s string) bool {
	if len(s) != teamIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// looksLikeTeamID guesses whether a first label that is not a valid team ID was meant as one
// (it holds a digit, or is all uppercase), so the error speaks of the team ID rather than of the
// "group." prefix the caller was not using.
func looksLikeTeamID(s string) bool {
	if s == "" {
		return false
	}
	upper := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if '0' <= c && c <= '9' {
			return true
		}
		if 'a' <= c && c <= 'z' {
			upper = false
		}
	}
	return upper
}

// HasGroupPrefix reports whether name is group, a '.', and at least one more byte: the exact,
// case-sensitive test the sandbox applies. It does not check that group is well formed; use
// ValidateGroup for that.
func HasGroupPrefix(name, group string) bool {
	return len(name) > len(group)+1 && name[len(group)] == '.' && name[:len(group)] == group
}
