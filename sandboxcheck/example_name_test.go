package sandboxcheck_test

import (
	"errors"
	"fmt"

	"github.com/machport/machport/sandboxcheck"
)

// A service name inside the App Sandbox must begin with one of the app's application groups and a
// period; the error says which rule a name breaks and suggests one that passes.
func Example() {
	const group = "group.com.example"

	// The '.' after the group is missing, so launchd would answer BOOTSTRAP_NOT_PRIVILEGED.
	err := sandboxcheck.ValidateName("group.com.exampleworker", group)
	fmt.Println(err)
	fmt.Println(errors.Is(err, sandboxcheck.ErrOutsideGroups))

	var ne *sandboxcheck.NameError
	if errors.As(err, &ne) {
		fmt.Println(sandboxcheck.ValidateName(ne.Example, group))
	}
	// Output:
	// sandboxcheck: service name "group.com.exampleworker" is outside the application groups [group.com.example]: it is missing the '.' after group "group.com.example"; use e.g. "group.com.example.worker"
	// true
	// <nil>
}

// A name inside the group is valid.
func ExampleValidateName() {
	fmt.Println(sandboxcheck.ValidateName("group.com.example.worker", "group.com.example"))
	// Output: <nil>
}
