package sandboxcheck_test

import (
	"errors"
	"fmt"

	"github.com/machport/machport/sandboxcheck"
)

func ExampleValidateName() {
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
