package notify_test

import (
	"context"
	"fmt"
	"time"

	"github.com/machport/machport/notify"
)

// Watch a name, post it (from any process: here the same one), and read the state when the
// delivery arrives.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const name = "com.example.machport.config-changed"
	sub, err := notify.Watch(ctx, name)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Cancel()

	if err := sub.SetState(42); err != nil { // the state travels with the name, not the post
		fmt.Println(err)
		return
	}
	if err := notify.Post(name); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case d := <-sub.C():
		state, _ := sub.State()
		fmt.Println("posted:", d.Name, "state:", state)
	case <-ctx.Done():
		fmt.Println("no delivery")
	}
	// Output: posted: com.example.machport.config-changed state: 42
}
