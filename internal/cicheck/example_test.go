package cicheck_test

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/machport/machport/internal/cicheck"
)

// The tests the workflow's darwin-only job must see pass on macOS.
func ExampleWorkflowTests() {
	tests, err := cicheck.WorkflowTests(filepath.Join("..", "..", ".github", "workflows", "ci.yml"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(slices.Contains(tests, "TestLaunchdCheckIn"))
	// Output: true
}
