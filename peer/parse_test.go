package peer

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePredicates(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want string // the predicates' Strings joined by " and "; "" for an error
		bad  string // for an error: the item it names
	}{
		{"uid=501", "uid == 501", ""},
		{" uid = 0, 501 ; gid=20", "uid in [0 501] and gid == 20", ""},
		{"pid=123;exe=/usr/bin/x", `pid == 123 and executable == "/usr/bin/x"`, ""},
		{`exe=/a b/c`, `executable == "/a b/c"`, ""},
		{`cs=anchor apple generic and identifier "a=b"`, `code signing "anchor apple generic and identifier \"a=b\""`, ""},
		{"", "", ""},
		{"  ", "", ""},
		{"uid=501;", "", ""},
		{"uid=501;;gid=2", "", ""},
		{"uid", "", "uid"},
		{"uid=", "", "uid="},
		{"uid=-1", "", "uid=-1"},
		{"uid=4294967296", "", "uid=4294967296"},
		{"uid=1,,2", "", "uid=1,,2"},
		{"uid=0x10", "", "uid=0x10"},
		{"gid=abc", "", "gid=abc"},
		{"pid=0", "", "pid=0"},
		{"pid=1,2", "", "pid=1,2"},
		{"pid=2147483648", "", "pid=2147483648"},
		{"exe=bin/x", "", "exe=bin/x"},
		{"exe=", "", "exe="},
		{"cs=", "", "cs="},
		{"user=501", "", "user=501"},
		{"UID=501", "", "UID=501"},
		{"uid=1; uid=2", "", "uid=2"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			preds, items, err := parsePredicates(tc.expr)
			if tc.want == "" {
				var pe *ParseError
				require.ErrorAs(t, err, &pe)
				require.ErrorIs(t, err, ErrInvalidRequirement)
				require.Equal(t, tc.bad, pe.Item)
				if tc.bad != "" {
					require.ErrorContains(t, err, tc.bad)
				}
				return
			}
			require.NoError(t, err)
			require.Len(t, items, len(preds))
			var got []string
			for _, p := range preds {
				got = append(got, p.String())
			}
			require.Equal(t, tc.want, strings.Join(got, " and "))
		})
	}
}

// Parse builds the requirement; where there is no code signing, a cs item is refused as New
// refuses it, naming the item.
func TestParse(t *testing.T) {
	r, err := Parse("exe=/usr/bin/x; uid=0,501")
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, `uid in [0 501] and executable == "/usr/bin/x"`, r.String())
	require.Equal(t, "uid=0,501; exe=/usr/bin/x", r.Expr())

	_, err = Parse("uid=1; nope")
	require.ErrorIs(t, err, ErrInvalidRequirement)

	if runtime.GOOS != "darwin" {
		_, err = Parse(`uid=0; cs=identifier "com.example"`)
		require.ErrorIs(t, err, errors.ErrUnsupported)
		var pe *ParseError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, `cs=identifier "com.example"`, pe.Item)
	}
}

// Parse never panics; what it accepts prints (Expr) as an expression that parses to the same
// requirement.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"uid=501", "uid=0,501;gid=20", "pid=1; exe=/bin/sh", `cs=identifier "x"`,
		"", ";", "uid=;", "exe=/a=b", " gid = 4294967295 ", "pid=-0", "uid=+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		preds, _, err := parsePredicates(expr)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidRequirement) {
				t.Fatalf("%q: error %v is no *ParseError wrapping ErrInvalidRequirement", expr, err)
			}
			return
		}
		// Build without the host: the syntax's predicates, code signing included, through a
		// system that accepts any code-signing text.
		r, err := newWith(parseOnlySystem{}, preds)
		if err != nil {
			t.Fatalf("%q parsed but New refused it: %v", expr, err)
		}
		again, _, err := parsePredicates(r.Expr())
		if err != nil {
			t.Fatalf("%q: its Expr %q does not parse: %v", expr, r.Expr(), err)
		}
		r2, err := newWith(parseOnlySystem{}, again)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != r2.String() || r.Expr() != r2.Expr() {
			t.Fatalf("%q: round trip changed it: %q / %q, then %q / %q", expr, r.String(), r.Expr(), r2.String(), r2.Expr())
		}
	})
}
