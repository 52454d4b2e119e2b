//go:build linux

package libsystemdouble

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	hashA = strings.Repeat("a1", 20)
	hashB = strings.Repeat("b2", 20)
)

// What parses as one requirement, as SecRequirementCreateWithString takes it, and what is a
// syntax error (errSecCSReqInvalid): Security's grammar (requirements.grammar) for every form.
func TestParseRequirementGrammar(t *testing.T) {
	for _, tc := range []struct {
		text string
		ok   bool
	}{
		{`identifier "com.example"`, true},
		{`identifier = "com.example"`, true},
		{`identifier == "com.example"`, true},
		{`identifier com.example`, true},
		{`cdhash H"` + hashA + `"`, true},
		{`identifier "a" and cdhash H"` + hashA + `"`, true},
		{`identifier "a" or identifier "b"`, true},
		{`!identifier "a"`, true},
		{`! (identifier "a" or identifier "b") and always`, true},
		{`anchor apple`, true},
		{`anchor apple generic`, true},
		{`anchor generic apple`, true},
		{`anchor apple generic and certificate leaf[subject.OU] = "TEAMID"`, true},
		{`anchor apple generic and certificate leaf[subject.OU] = TEAMID`, true},
		{`anchor apple generic and identifier "com.x" and (certificate leaf[field.1.2.840.113635.100.6.1.9] /* exists */ or certificate 1[field.1.2.840.113635.100.6.2.6] /* exists */ and certificate leaf[field.1.2.840.113635.100.6.1.13] /* exists */ and certificate leaf[subject.OU] = "MQK467HD9A")`, true},
		{`certificate leaf[field.1.2.840.113635.100.6.1.13] exists`, true},
		{`cert 1[extension.1.2.3] = 0x0a0b`, true},
		{`certificate -2[policy.1.2.3]`, true},
		{`certificate root = H"` + hashA + `"`, true},
		{`anchor = H"` + hashA + `"`, true},
		{`anchor trusted`, true},
		{`certificate leaf trusted`, true},
		{`info[CFBundleVersion] >= "2.0"`, true},
		{`info["CFBundleName"] = "Ex*"`, true}, // a * inside the quotes is a character
		{`info["CFBundleName"] = Ex*`, true},
		{`info[CFBundleName] = *ample*`, true},
		{`info[CFBundleName] ~ ampl`, true},
		{`entitlement["com.apple.security.app-sandbox"] exists`, true},
		{`entitlement["com.apple.security.app-sandbox"]`, true},
		{`entitlement["com.apple.security.app-sandbox"] = "true"`, true},
		{`platform = 1`, true},
		{`always`, true},
		{`never or false or true`, true},
		{`identifier "a"; `, true},
		{"# a comment\nidentifier \"a\" // another", true},
		{`identifier "with \"quotes\""`, true},
		{`("com.example.code")`, true},
		{`anchor apple "named"`, true},

		{``, false},
		{`identifier`, false},
		{`identifier and`, false},
		{`identifier "a" and`, false},
		{`identifier "a" and and`, false},
		{`identifier "a" or`, false},
		{`identifier "a`, false},
		{`not identifier "a"`, false}, // negation is "!"
		{`(identifier "a"`, false},
		{`identifier "a")`, false},
		{`cdhash H"zz"`, false},
		{`cdhash H"a1b2"`, false}, // not a SHA-1: Security's "invalid hash length"
		{`cdhash H""`, false},
		{`cdhash a1b2`, false},
		{`anchor generic`, false},
		{`certificate leaf[issuer.CN] = "x"`, false}, // unrecognized certificate field
		{`certificate leaf[field.1.x] = "x"`, false},
		{`certificate branch[subject.CN]`, false},
		{`anchor = "/var/db/anchor.cert"`, false}, // a path: not modelled
		{`info[] = "x"`, false},
		{`info["k"] = 0xabc`, false}, // odd number of digits
		{`designated => identifier "a"`, false},
		{`identifier "a" /* unterminated`, false},
		{`identifer "com.example"`, false},
		{`platform = x`, false},
		{`identifier "a" identifier "b"`, false},
	} {
		_, err := parseRequirementText(tc.text)
		require.Equal(t, tc.ok, err == nil, "%q: %v", tc.text, err)
	}
}

// Each form against signatures the double can be given: a Developer ID program of team TEAMID,
// one of another team, Apple's own code, and ad hoc code.
func TestRequirementEvaluation(t *testing.T) {
	cd := bytes.Repeat([]byte{0xa1}, 20)
	team := DeveloperID("com.example.helper", "TEAMID", cd)
	team.Info = map[string]string{"CFBundleVersion": "2.5", "CFBundleName": "Example"}
	team.Entitlements = map[string]string{"com.apple.security.app-sandbox": "true"}
	team.Certificates[0].SHA1 = bytes.Repeat([]byte{0xb2}, 20)
	other := DeveloperID("com.example.helper", "OTHERTEAM", cd)
	apple := &Signature{Identifier: "com.apple.Safari", Anchor: AnchorApple, Platform: 1,
		Certificates: []Certificate{{Subject: map[string]string{"CN": "Software Signing"}}, {Subject: map[string]string{"CN": "Apple Root CA"}, Trusted: true}}}
	adhoc := &Signature{Identifier: "com.example.helper", CDHash: cd}
	const teamReq = `anchor apple generic and certificate leaf[subject.OU] = "TEAMID"`
	for _, tc := range []struct {
		req                       string
		team, other, apple, adhoc bool
	}{
		{teamReq, true, false, false, false},
		{`anchor apple`, false, false, true, false},
		{`anchor apple generic`, true, true, true, false},
		{`identifier "com.example.helper"`, true, true, false, true},
		{`cdhash H"` + hashA + `"`, true, true, false, true},
		{`cdhash H"` + hashB + `"`, false, false, false, false},
		{`certificate leaf = H"` + hashB + `"`, true, false, false, false},
		{`certificate leaf[field.1.2.840.113635.100.6.1.13]`, true, true, false, false},
		{`certificate 1[field.1.2.840.113635.100.6.2.6] exists`, true, true, false, false},
		{`certificate root[subject.CN] = "Apple Root CA"`, true, true, true, false},
		{`certificate -2[subject.CN] = "Developer ID"*`, true, true, false, false},
		{`certificate leaf[subject.CN] = *"(TEAMID)"`, true, false, false, false},
		{`certificate leaf[subject.CN] ~ TEAMID`, true, false, false, false},
		{`anchor trusted`, false, false, true, false},
		{`certificate root trusted`, false, false, true, false},
		{`info[CFBundleVersion] >= "2.0"`, true, false, false, false},
		{`info[CFBundleVersion] < 2.10`, true, false, false, false}, // numbers compare as numbers
		{`info[CFBundleName] = Ex*`, true, false, false, false},
		{`info[CFBundleName] exists`, true, false, false, false},
		{`entitlement["com.apple.security.app-sandbox"] = "true"`, true, false, false, false},
		{`platform = 1`, false, false, true, false},
		{`!anchor apple generic`, false, false, false, true},
		{`anchor apple or ` + teamReq, true, false, true, false},
		{`(anchor apple or anchor apple generic) and !certificate leaf[subject.OU] = TEAMID`, false, true, true, false},
		{`identifier "com.example.helper" and anchor apple generic or anchor apple`, true, true, true, false},
		{`always`, true, true, true, true},
		{`never`, false, false, false, false},
		{`("named.code")`, false, false, false, false},
	} {
		n, err := parseRequirementText(tc.req)
		require.NoError(t, err, tc.req)
		for _, s := range []struct {
			name string
			sig  *Signature
			want bool
		}{{"team", team, tc.team}, {"other team", other, tc.other}, {"apple", apple, tc.apple}, {"ad hoc", adhoc, tc.adhoc}} {
			require.Equal(t, s.want, n.satisfies(s.sig), "%q on %s", tc.req, s.name)
		}
	}
}

// The parser never panics, and what parses prints back (String) as text that parses to the same
// requirement: the printed form is a fixed point.
func FuzzParseRequirement(f *testing.F) {
	for _, seed := range []string{
		`anchor apple generic and certificate leaf[subject.OU] = "TEAMID"`,
		`identifier "a" or !(cdhash H"` + hashA + `" and platform = 2)`,
		`info[k] = *v* and entitlement["e"] >= 0x0a0b or certificate -3[policy.1.2] exists`,
		`certificate root = H"` + hashB + `"; ; `,
		`anchor apple "x" or ("y") /* c */ # d`,
		`(((((identifier a)))))`,
		`identifier "\\\"" and certificate 2 trusted`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		n, err := parseRequirementText(text)
		if err != nil {
			return
		}
		printed := n.String()
		again, err := parseRequirementText(printed)
		if err != nil {
			t.Fatalf("%q parses, but its printed form %q does not: %v", text, printed, err)
		}
		if again.String() != printed {
			t.Fatalf("%q printed %q, which reprints as %q", text, printed, again.String())
		}
	})
}
