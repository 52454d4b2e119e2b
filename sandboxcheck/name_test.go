package sandboxcheck_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/machport/machport/sandboxcheck"
)

const (
	iosGroup  = "group.com.example"
	teamGroup = "ABCDE12345.com.example.shared"
)

// sentinels lists every rule error, so tests can check that an error wraps exactly one.
var sentinels = []error{
	sandboxcheck.ErrEmptyName,
	sandboxcheck.ErrNameTooLong,
	sandboxcheck.ErrInvalidUTF8,
	sandboxcheck.ErrNameHasNUL,
	sandboxcheck.ErrOutsideGroups,
	sandboxcheck.ErrEmptyRest,
	sandboxcheck.ErrBadGroup,
}

// pad returns prefix followed by 'a's up to n bytes in all, then tail; the whole is n+len(tail) bytes.
func pad(prefix string, n int, tail string) string {
	return prefix + strings.Repeat("a", n-len(prefix)) + tail
}

// checkNameError asserts the invariants every error from ValidateName must hold, whatever the
// input: one sentinel, the full name quoted in the message, the caller's groups, and an example
// that is itself accepted.
func checkNameError(t *testing.T, err error, name string, groups []string) *sandboxcheck.NameError {
	t.Helper()
	var ne *sandboxcheck.NameError
	require.ErrorAs(t, err, &ne)
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	assert.Equal(t, 1, n, "must wrap exactly one sentinel")
	assert.Equal(t, name, ne.Name)
	assert.Equal(t, len(groups), len(ne.Groups))
	for i := range groups {
		assert.Equal(t, groups[i], ne.Groups[i])
	}
	// Quoted once: a name wrapped by bootstrap and cfmessageport errors is left to this text.
	assert.Equal(t, 1, strings.Count(err.Error(), strconv.Quote(name)), "the name quoted once: %s", err)
	assert.NotEmpty(t, ne.Detail)
	if ne.Example != "" {
		assert.NoError(t, sandboxcheck.ValidateName(ne.Example, groups...), "example %q", ne.Example)
		assert.Contains(t, err.Error(), strconv.Quote(ne.Example))
	}
	return ne
}

func TestValidateName(t *testing.T) {
	long126 := strings.Repeat("a", 126)
	tests := []struct {
		desc    string
		name    string
		groups  []string
		want    error  // nil: the name is accepted
		msg     string // substring expected in Error()
		example string // expected Example, when the row checks it
	}{
		// Accepted names.
		{desc: "iOS group form", name: "group.com.example.app.worker", groups: []string{iosGroup}},
		{desc: "macOS team form", name: "ABCDE12345.com.example.shared.worker", groups: []string{teamGroup}},
		{desc: "second group matches", name: "ABCDE12345.com.example.shared.x", groups: []string{iosGroup, teamGroup}},
		{desc: "first of two groups matches", name: "group.com.example.x", groups: []string{iosGroup, teamGroup}},
		{desc: "UTF-8 in the rest", name: "group.com.example.wörker", groups: []string{iosGroup}},
		{desc: "one-byte rest", name: "group.com.example.x", groups: []string{iosGroup}},
		{desc: "rest of dots", name: "group.com.example..", groups: []string{iosGroup}},
		{desc: "no groups, plain", name: "com.example.worker"},
		{desc: "no groups, spaces and dots", name: " my service . v2 ."},
		{desc: "no groups, unicode", name: "日本語のサービス"},
		{desc: "no groups, single byte", name: "x"},
		{desc: "127 ASCII bytes, no groups", name: pad("", 127, "")},
		{desc: "127 ASCII bytes, with group", name: pad(iosGroup+".", 127, ""), groups: []string{iosGroup}},
		{desc: "127 bytes ending in 2-byte char", name: pad(iosGroup+".", 125, "é"), groups: []string{iosGroup}},
		{desc: "127 bytes ending in 3-byte char", name: pad("", 124, "€")},
		{desc: "127 bytes ending in 4-byte char", name: pad(iosGroup+".", 123, "😀"), groups: []string{iosGroup}},

		// Empty.
		{desc: "empty, no groups", name: "", want: sandboxcheck.ErrEmptyName, msg: `service name "" is empty`},
		{desc: "empty, with group", name: "", groups: []string{iosGroup}, want: sandboxcheck.ErrEmptyName},

		// Length.
		{desc: "128 ASCII bytes", name: pad("", 128, ""), want: sandboxcheck.ErrNameTooLong,
			msg: "128 bytes, 1 over the limit of 127"},
		{desc: "2-byte char crossing 127", name: long126 + "é", want: sandboxcheck.ErrNameTooLong,
			msg: "128 bytes, 1 over"},
		{desc: "4-byte char crossing 127", name: pad(iosGroup+".", 125, "😀"), groups: []string{iosGroup},
			want: sandboxcheck.ErrNameTooLong, msg: "129 bytes, 2 over", example: pad(iosGroup+".", 125, "")},
		{desc: "300 bytes with group", name: pad(iosGroup+".", 300, ""), groups: []string{iosGroup},
			want: sandboxcheck.ErrNameTooLong, msg: "300 bytes, 173 over", example: pad(iosGroup+".", 127, "")},
		{desc: "too long outside the group", name: pad("com.example.", 200, ""), groups: []string{iosGroup},
			want: sandboxcheck.ErrNameTooLong, example: pad(iosGroup+".", 127, "")},
		{desc: "too long, bad group: no example", name: pad("", 200, ""), groups: []string{"group..com"},
			want: sandboxcheck.ErrNameTooLong, example: ""},

		// UTF-8.
		{desc: "lone continuation byte", name: "group.com.example.\x80x", groups: []string{iosGroup},
			want: sandboxcheck.ErrInvalidUTF8, msg: "byte 18 (0x80)"},
		{desc: "truncated sequence", name: "abc\xe2\x82", want: sandboxcheck.ErrInvalidUTF8, msg: "byte 3 (0xe2)"},
		{desc: "overlong encoding of '/'", name: "a\xc0\xaf", want: sandboxcheck.ErrInvalidUTF8, msg: "byte 1 (0xc0)"},
		{desc: "encoded surrogate", name: "\xed\xa0\x80", want: sandboxcheck.ErrInvalidUTF8, msg: "byte 0 (0xed)"},
		{desc: "invalid UTF-8 beats NUL", name: "\x00\xff", want: sandboxcheck.ErrInvalidUTF8, msg: "byte 1"},
		{desc: "invalid UTF-8 beats length", name: pad("", 200, "\xff"), want: sandboxcheck.ErrInvalidUTF8, msg: "byte 200"},

		// NUL.
		{desc: "NUL at start", name: "\x00group.com.example.x", groups: []string{iosGroup},
			want: sandboxcheck.ErrNameHasNUL, msg: "byte 0 is NUL"},
		{desc: "NUL in the middle", name: "group\x00x", want: sandboxcheck.ErrNameHasNUL, msg: "byte 5 is NUL"},
		{desc: "NUL at end", name: "group.com.example.x\x00", groups: []string{iosGroup},
			want: sandboxcheck.ErrNameHasNUL, msg: "byte 19 is NUL"},
		{desc: "NUL beats length", name: pad("\x00", 200, ""), want: sandboxcheck.ErrNameHasNUL},

		// Nothing after the group.
		{desc: "name is the group", name: iosGroup, groups: []string{iosGroup},
			want: sandboxcheck.ErrEmptyRest, msg: "is an application group, with nothing after it", example: iosGroup + ".service"},
		{desc: "name is group and dot", name: iosGroup + ".", groups: []string{iosGroup},
			want: sandboxcheck.ErrEmptyRest, msg: "nothing follows the '.'", example: iosGroup + ".service"},
		{desc: "name is the second group", name: teamGroup, groups: []string{iosGroup, teamGroup},
			want: sandboxcheck.ErrEmptyRest, example: teamGroup + ".service"},

		// Outside the groups.
		{desc: "missing dot", name: "group.com.exampleworker", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: `missing the '.' after group "group.com.example"`,
			example: "group.com.example.worker"},
		{desc: "missing dot at 127 bytes", name: pad(iosGroup, 127, ""), groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: "missing the '.'", example: pad(iosGroup+".", 127, "")},
		{desc: "case of group prefix", name: "Group.com.example.x", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: "only in letter case", example: "group.com.example.x"},
		{desc: "case inside group", name: "group.COM.example.x", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: `differs from group "group.com.example" only in letter case`,
			example: "group.com.example.x"},
		{desc: "case of team ID", name: "abcde12345.com.example.shared.w", groups: []string{teamGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: "only in letter case", example: teamGroup + ".w"},
		{desc: "case and missing dot", name: "GROUP.com.exampleworker", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: "missing the '.'", example: "group.com.example.worker"},
		{desc: "name is group in other case", name: "GROUP.COM.EXAMPLE", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: "letter case", example: iosGroup + ".service"},
		{desc: "name is a prefix of the group", name: "group.com", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: "only the beginning of group", example: iosGroup + ".service"},
		{desc: "group only in the middle", name: "com.x.group.com.example.worker", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: "at byte 6, but must start with it",
			example: "group.com.example.worker"},
		{desc: "plain reverse DNS", name: "com.example.worker", groups: []string{iosGroup, teamGroup},
			want: sandboxcheck.ErrOutsideGroups, msg: "starts with none of the groups", example: "group.com.example.worker"},
		{desc: "message lists the groups", name: "worker", groups: []string{iosGroup, teamGroup},
			want: sandboxcheck.ErrOutsideGroups,
			msg:  `outside the application groups [group.com.example ABCDE12345.com.example.shared]`},
		{desc: "unicode suffix is tidied", name: "com.example.wörker", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, example: "group.com.example.w_rker"},
		{desc: "no usable last component", name: "my service.", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, example: "group.com.example.my_service"},
		{desc: "nothing usable at all", name: "...", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, example: "group.com.example.service"},
		{desc: "other group's name", name: "group.org.other.x", groups: []string{iosGroup},
			want: sandboxcheck.ErrOutsideGroups, example: "group.com.example.x"},

		// Malformed groups.
		{desc: "group with one label is fine", name: "group.x.y", groups: []string{"group.x"}},
		{desc: "group is group.", name: "group.x", groups: []string{"group."},
			want: sandboxcheck.ErrBadGroup, msg: `nothing follows "group."`},
		{desc: "group with empty label", name: "group..com.x.y", groups: []string{"group..com.x"},
			want: sandboxcheck.ErrBadGroup, msg: "empty label"},
		{desc: "group without group. or team", name: "grp.com.example.x", groups: []string{"grp.com.example"},
			want: sandboxcheck.ErrBadGroup, msg: `must start with "group." or a 10-character team ID`},
		{desc: "team ID of 9", name: "ABCDE1234.com.example.x", groups: []string{"ABCDE1234.com.example"},
			want: sandboxcheck.ErrBadGroup, msg: `team ID "ABCDE1234" must be 10 characters A-Z or 0-9`},
		{desc: "team ID of 11", name: "x", groups: []string{"ABCDE123456.com.example"},
			want: sandboxcheck.ErrBadGroup, msg: `team ID "ABCDE123456"`},
		{desc: "lowercase team ID", name: "x", groups: []string{"abcde12345.com.example"},
			want: sandboxcheck.ErrBadGroup, msg: "must be uppercase"},
		{desc: "team ID with hyphen", name: "x", groups: []string{"ABCDE-1234.com.example"},
			want: sandboxcheck.ErrBadGroup, msg: `team ID "ABCDE-1234"`},
		{desc: "label with underscore", name: "group.com.my_app.x", groups: []string{"group.com.my_app"},
			want: sandboxcheck.ErrBadGroup, msg: `label "my_app" contains '_'`},
		{desc: "label with space", name: "x", groups: []string{"group.com.my app"},
			want: sandboxcheck.ErrBadGroup, msg: `contains ' '`},
		{desc: "capital Group", name: "Group.com.example.x", groups: []string{"Group.com.example"},
			want: sandboxcheck.ErrBadGroup, msg: `"Group." must be spelled "group." in lowercase`},
		{desc: "empty group", name: "group.com.example.x", groups: []string{""},
			want: sandboxcheck.ErrBadGroup, msg: "empty"},
		{desc: "group with NUL", name: "x", groups: []string{"group.com.exa\x00mple"},
			want: sandboxcheck.ErrBadGroup, msg: "byte 13 is NUL"},
		{desc: "group too long", name: "x", groups: []string{pad("group.com.", 126, "")},
			want: sandboxcheck.ErrBadGroup, msg: "126 bytes, too long"},
		{desc: "bad second group", name: "group.com.example.x", groups: []string{iosGroup, "group.c_m"},
			want: sandboxcheck.ErrBadGroup, msg: `application group "group.c_m", given for service name`},
		{desc: "name is its own bad group", name: "group.c_m", groups: []string{"group.c_m"},
			want: sandboxcheck.ErrBadGroup, msg: `application group "group.c_m" is malformed`},
	}
	require.GreaterOrEqual(t, len(tests), 45)
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := sandboxcheck.ValidateName(tt.name, tt.groups...)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			ne := checkNameError(t, err, tt.name, tt.groups)
			assert.Contains(t, err.Error(), tt.msg)
			if tt.example != "" || tt.want == sandboxcheck.ErrNameTooLong && len(tt.groups) > 0 {
				assert.Equal(t, tt.example, ne.Example)
			}
			if tt.want == sandboxcheck.ErrBadGroup {
				assert.Empty(t, ne.Example, "no name passes with a malformed group")
				assert.Contains(t, tt.groups, ne.Group)
				assert.Error(t, sandboxcheck.ValidateGroup(ne.Group), "Group names the malformed one")
			}
		})
	}
}

func TestValidateNameLengthBoundary(t *testing.T) {
	// A name of MaxNameLen bytes fits name_t with its NUL; one more byte does not.
	require.NoError(t, sandboxcheck.ValidateName(strings.Repeat("n", sandboxcheck.MaxNameLen)))
	require.ErrorIs(t, sandboxcheck.ValidateName(strings.Repeat("n", sandboxcheck.MaxNameLen+1)),
		sandboxcheck.ErrNameTooLong)
	// Bytes count, not characters: 43 three-byte characters are 129 bytes.
	name := strings.Repeat("€", 43)
	require.Equal(t, 43, utf8.RuneCountInString(name))
	require.ErrorIs(t, sandboxcheck.ValidateName(name), sandboxcheck.ErrNameTooLong)
}

func TestNameErrorIs(t *testing.T) {
	cases := map[error]error{
		sandboxcheck.ErrEmptyName:     sandboxcheck.ValidateName(""),
		sandboxcheck.ErrNameTooLong:   sandboxcheck.ValidateName(strings.Repeat("a", 128)),
		sandboxcheck.ErrInvalidUTF8:   sandboxcheck.ValidateName("\xff"),
		sandboxcheck.ErrNameHasNUL:    sandboxcheck.ValidateName("a\x00"),
		sandboxcheck.ErrOutsideGroups: sandboxcheck.ValidateName("com.example.x", iosGroup),
		sandboxcheck.ErrEmptyRest:     sandboxcheck.ValidateName(iosGroup, iosGroup),
		sandboxcheck.ErrBadGroup:      sandboxcheck.ValidateName("x", "group"),
	}
	require.Len(t, cases, len(sentinels))
	for want, err := range cases {
		t.Run(want.Error(), func(t *testing.T) {
			wrapped := fmt.Errorf("registering: %w", err)
			for _, s := range sentinels {
				assert.Equal(t, s == want, errors.Is(wrapped, s), "errors.Is(%v)", s)
			}
			var ne *sandboxcheck.NameError
			require.ErrorAs(t, wrapped, &ne)
			assert.Same(t, want, ne.Unwrap())
			assert.Same(t, want, ne.Rule)
		})
	}
}

func TestNameErrorFields(t *testing.T) {
	t.Run("long name is never truncated", func(t *testing.T) {
		name := "group.com.example." + strings.Repeat("0123456789", 28) + "xy" // 300 bytes
		require.Len(t, name, 300)
		err := sandboxcheck.ValidateName(name, iosGroup)
		var ne *sandboxcheck.NameError
		require.ErrorAs(t, err, &ne)
		assert.Equal(t, name, ne.Name)
		assert.Contains(t, err.Error(), strconv.Quote(name))
		assert.Equal(t, iosGroup, ne.Group)
		assert.Len(t, ne.Example, sandboxcheck.MaxNameLen)
		assert.True(t, strings.HasPrefix(name, ne.Example), "example keeps the start of the name")
	})
	t.Run("groups are copied", func(t *testing.T) {
		groups := []string{iosGroup}
		err := sandboxcheck.ValidateName("x", groups...)
		groups[0] = "changed"
		var ne *sandboxcheck.NameError
		require.ErrorAs(t, err, &ne)
		assert.Equal(t, []string{iosGroup}, ne.Groups)
	})
	t.Run("outside: all fields", func(t *testing.T) {
		err := sandboxcheck.ValidateName("group.com.exampleworker", iosGroup)
		var ne *sandboxcheck.NameError
		require.ErrorAs(t, err, &ne)
		assert.Equal(t, sandboxcheck.NameError{
			Name:    "group.com.exampleworker",
			Groups:  []string{iosGroup},
			Rule:    sandboxcheck.ErrOutsideGroups,
			Group:   iosGroup,
			Detail:  `it is missing the '.' after group "group.com.example"`,
			Example: "group.com.example.worker",
		}, *ne)
		assert.Equal(t, `sandboxcheck: service name "group.com.exampleworker" is outside the application groups `+
			`[group.com.example]: it is missing the '.' after group "group.com.example"; use e.g. "group.com.example.worker"`,
			err.Error())
	})
	t.Run("none closest", func(t *testing.T) {
		var ne *sandboxcheck.NameError
		require.ErrorAs(t, sandboxcheck.ValidateName("worker", iosGroup), &ne)
		assert.Empty(t, ne.Group)
		assert.Equal(t, "group.com.example.worker", ne.Example)
	})
	t.Run("bad group: Name is the service name", func(t *testing.T) {
		var ne *sandboxcheck.NameError
		require.ErrorAs(t, sandboxcheck.ValidateName("svc", iosGroup, "grp.x.y"), &ne)
		assert.Equal(t, "svc", ne.Name)
		assert.Equal(t, "grp.x.y", ne.Group)
		assert.Empty(t, ne.Example)
	})
	t.Run("no example without groups", func(t *testing.T) {
		var ne *sandboxcheck.NameError
		require.ErrorAs(t, sandboxcheck.ValidateName(strings.Repeat("a", 200)), &ne)
		assert.Empty(t, ne.Example)
		assert.NotContains(t, ne.Error(), "use e.g.")
	})
}

// TestExamplesAreValid checks, beyond the table, that the example built for many near misses is
// accepted with the same groups: an example that is itself refused would be worse than none.
func TestExamplesAreValid(t *testing.T) {
	groups := [][]string{
		{iosGroup},
		{teamGroup},
		{iosGroup, teamGroup},
		{pad("group.com.", 125, "")}, // the longest group: room for one byte of suffix
	}
	names := []string{
		"x", ".", "..", "-", "_", " ", "é", "😀 😀", "com.example.worker", "worker.", "a b c",
		iosGroup, iosGroup + ".", iosGroup + "x", "GROUP.COM.EXAMPLE.X", "Group.com.Example",
		"group.com", "g", teamGroup, teamGroup + "é", "abcde12345.com.example.shared.x",
		"xx." + iosGroup + ".y", pad(iosGroup, 127, ""), pad(iosGroup, 126, "é"),
		pad("", 500, ""), pad(iosGroup+".", 126, "é"), pad(iosGroup+".", 125, "😀"),
		strings.Repeat("é", 100), strings.Repeat("😀", 40), strings.Repeat(".", 200),
	}
	for _, gs := range groups {
		for _, g := range gs {
			require.NoError(t, sandboxcheck.ValidateGroup(g))
		}
		for _, name := range names {
			err := sandboxcheck.ValidateName(name, gs...)
			if err == nil {
				continue
			}
			ne := checkNameError(t, err, name, gs)
			if errors.Is(err, sandboxcheck.ErrOutsideGroups) || errors.Is(err, sandboxcheck.ErrEmptyRest) ||
				errors.Is(err, sandboxcheck.ErrNameTooLong) {
				assert.NotEmpty(t, ne.Example, "name %q, groups %q", name, gs)
			}
		}
	}
}

func TestValidateGroup(t *testing.T) {
	tests := []struct {
		group string
		ok    bool
		msg   string
	}{
		{group: "group.com.example", ok: true},
		{group: "group.com.example.app", ok: true},
		{group: "group.com.my-app.x9", ok: true},
		{group: "ABCDE12345.com.example", ok: true},
		{group: "0123456789.com.example.shared", ok: true},
		{group: "group.a.b", ok: true},
		{group: pad("group.com.", 125, ""), ok: true},
		{group: "", msg: "empty"},
		{group: "group", msg: `must start with "group." or a 10-character team ID`},
		{group: "group.", msg: `nothing follows "group."`},
		{group: "group.com", ok: true}, // the OS takes one label: it compares prefixes
		{group: "group.x", ok: true},
		{group: "group..com.x", msg: "empty label"},
		{group: "group.com.example.", msg: "empty label"},
		{group: "grp.com.example", msg: `not "grp."`},
		{group: "Group.com.example", msg: "lowercase"},
		{group: "GROUP.com.example", msg: "lowercase"},
		{group: "ABC123.com.example", msg: `team ID "ABC123" must be 10 characters A-Z or 0-9`},
		{group: "ABCDE1234.com.example", msg: "10 characters"},
		{group: "ABCDE123456.com.example", msg: "10 characters"},
		{group: "abcde12345.com.example", msg: `must be uppercase: "ABCDE12345"`},
		{group: "ABCDE-1234.com.example", msg: "10 characters"},
		{group: "ABCDE12345.", msg: "nothing follows team ID"},
		{group: "ABCDE12345.com", ok: true},
		{group: "group.com.my_app", msg: `label "my_app" contains '_'`},
		{group: "group.com.my app", msg: `contains ' '`},
		{group: "group.com.exämple", msg: `contains 'ä'`},
		{group: "group.com.example\x00", msg: "byte 17 is NUL"},
		{group: "group.com.\xff", msg: "byte 10 (0xff)"},
		{group: pad("group.com.", 126, ""), msg: "126 bytes, too long"},
	}
	require.GreaterOrEqual(t, len(tests), 12)
	for _, tt := range tests {
		t.Run(tt.group, func(t *testing.T) {
			err := sandboxcheck.ValidateGroup(tt.group)
			if tt.ok {
				require.NoError(t, err)
				// A valid group must admit at least the shortest name under it.
				require.NoError(t, sandboxcheck.ValidateName(tt.group+".x", tt.group))
				return
			}
			require.ErrorIs(t, err, sandboxcheck.ErrBadGroup)
			var ne *sandboxcheck.NameError
			require.ErrorAs(t, err, &ne)
			assert.Equal(t, tt.group, ne.Name)
			assert.Equal(t, tt.group, ne.Group)
			assert.Empty(t, ne.Groups)
			assert.Empty(t, ne.Example)
			assert.Contains(t, err.Error(), "application group "+strconv.Quote(tt.group)+" is malformed")
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestHasGroupPrefix(t *testing.T) {
	tests := []struct {
		name, group string
		want        bool
	}{
		{"group.com.example.x", "group.com.example", true},
		{"group.com.example.app.worker", "group.com.example", true},
		{"group.com.example..", "group.com.example", true},
		{"ABCDE12345.com.example.x", "ABCDE12345.com.example", true},
		{"group.com.example.", "group.com.example", false},
		{"group.com.example", "group.com.example", false},
		{"group.com.examplex", "group.com.example", false},
		{"group.com.exampl", "group.com.example", false},
		{"Group.com.example.x", "group.com.example", false},
		{"x.group.com.example.y", "group.com.example", false},
		{"", "group.com.example", false},
		{".x", "", true},
		{"", "", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, sandboxcheck.HasGroupPrefix(tt.name, tt.group), "HasGroupPrefix(%q, %q)", tt.name, tt.group)
	}
}
