package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// machping's JSON is for scripts: here, check's verdict on a name outside the application
// group, with the name the sandbox would accept.
func Example() {
	var stdout bytes.Buffer
	code := run(context.Background(), []string{"check", "--json", "--group", "group.com.example.app", "com.example.worker"},
		&stdout, io.Discard)
	var doc struct {
		Valid   bool
		Rule    string
		Example string
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("exit", code, "valid", doc.Valid, "rule", doc.Rule)
	fmt.Println("try", doc.Example)
	// Output:
	// exit 4 valid false rule outside-groups
	// try group.com.example.app.worker
}
