// Package rerun runs a test binary again in a child with one more environment variable: the
// whole suite (Suite), or the calling test (Test). machport's packages use it to run their tests
// a second time through the Darwin logic over the libSystem double. It imports nothing of
// machport's, so that package mach's own tests can use it too.
package rerun

import (
	"flag"
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// Suite runs every test of the calling test binary a second time, in a child whose
// environment adds env (such as "MACHPORT_TEST_LIBSYSTEM_DOUBLE=1", which makes the binary run
// machport's Darwin logic over the libSystem double), and fails t when the child fails. The
// child skips self, the test that calls Suite, and passes on -test.run, -test.short and
// -test.v; under coverage it writes its counters where this process writes its own
// (-test.gocoverdir), so one profile holds both runs.
func Suite(t *testing.T, self, env string) {
	t.Helper()
	args := []string{"-test.count=1", "-test.skip=^" + self + "$"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	for _, f := range []string{"test.run", "test.gocoverdir", "test.timeout"} {
		if fl := flag.Lookup(f); fl != nil && fl.Value.String() != "" && fl.Value.String() != "0s" {
			args = append(args, "-"+f+"="+fl.Value.String())
		}
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil || testing.Verbose() {
		t.Logf("the suite again, with %s:\n%s", env, out)
	}
	if err != nil {
		t.Fatalf("the suite with %s failed: %v", env, err)
	}
}

// Test runs the calling top-level test alone in a child whose environment adds env, and
// fails t when the child fails: for a test that needs what env switches on (such as the Darwin
// logic over the libSystem double) in a process that runs without it.
func Test(t *testing.T, env string) {
	t.Helper()
	args := []string{"-test.count=1", "-test.run=^" + regexp.QuoteMeta(t.Name()) + "$"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	if fl := flag.Lookup("test.gocoverdir"); fl != nil && fl.Value.String() != "" {
		args = append(args, "-test.gocoverdir="+fl.Value.String())
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil || testing.Verbose() {
		t.Logf("%s again, with %s:\n%s", t.Name(), env, out)
	}
	if err != nil {
		t.Fatalf("%s with %s failed: %v", t.Name(), env, err)
	}
}
