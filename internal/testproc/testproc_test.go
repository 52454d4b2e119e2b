package testproc_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func(string) error{
		"greet": func(name string) error { fmt.Println("hello", name); return nil },
		// racy exits as a child built with the race detector does when it found a data race.
		"racy": func(string) error { os.Exit(66); return nil },
	})
}

func TestChildRunsItsRole(t *testing.T) {
	c := testproc.Start(t, "greet", "world")
	if got := c.Line(t); got != "hello world" {
		t.Fatalf("got %q", got)
	}
	if runtime.GOOS == "linux" && os.Getenv(bootstrap.EnvDir) == "" {
		t.Fatal("no private namespace directory")
	}
}

// A child whose race detector found a data race fails the test that started it: the report
// alone, on stderr, failed nothing.
func TestChildsDataRaceFailsTheTest(t *testing.T) {
	for _, tc := range []struct {
		role   string
		failed bool
	}{{"greet", false}, {"racy", true}} {
		t.Run(tc.role, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			testproc.Start(rec, tc.role, "world")
			for i := len(rec.cleanups) - 1; i >= 0; i-- {
				rec.cleanups[i]()
			}
			if got := len(rec.errors) > 0; got != tc.failed {
				t.Fatalf("failed: %v, want %v (%q)", got, tc.failed, rec.errors)
			}
		})
	}
}

// recordingTB keeps the cleanups and errors of the code under test instead of running them.
type recordingTB struct {
	testing.TB
	cleanups []func()
	errors   []string
}

func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func Example() {
	// In TestMain: testproc.Main(m, map[string]func(name string) error{"serve": serve})
	// In a test:   c := testproc.Start(t, "serve", name); ready := c.Line(t)
	fmt.Println(testproc.RoleEnv)
	// Output: MACHPORT_TEST_ROLE
}
