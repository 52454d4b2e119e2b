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

func Example() {
	// In TestMain: testproc.Main(m, map[string]func(name string) error{"serve": serve})
	// In a test:   c := testproc.Start(t, "serve", name); ready := c.Line(t)
	fmt.Println(testproc.RoleEnv)
	// Output: MACHPORT_TEST_ROLE
}
