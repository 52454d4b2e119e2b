package cicheck_test

import (
	"fmt"
	"path/filepath"

	"github.com/machport/machport/internal/cicheck"
)

// The tests the workflow's darwin-only job must see pass on macOS.
func ExampleWorkflowTests() {
	tests, err := cicheck.WorkflowTests(filepath.Join("..", "..", ".github", "workflows", "ci.yml"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(tests) > 0, tests[0])
	// Output: true TestCodeTextsMatchLaunchd
}
