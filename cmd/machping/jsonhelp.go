package main

// jsonHelp documents the JSON shapes ('machping help json'). TestJSONHelpCoversFields keeps it
// in step with the types.
const jsonHelp = `TODO
`
