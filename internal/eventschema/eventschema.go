// Package eventschema checks documents against docs/event.schema.json, the
// published JSON Schema of a lifecycle event, so that the tests of the types
// (pkg/hookspec) and of what notify-webhook posts hold the schema and the
// code to each other. It is for tests: it reads the schema from the source
// tree.
package eventschema

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Path is where the schema lives in the source tree.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "event.schema.json")
}

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	return jsonschema.NewCompiler().Compile(Path())
})

// Validate reports whether doc, one JSON document, is an event as the schema
// describes it.
func Validate(doc []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("event schema: %w", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(v)
}
