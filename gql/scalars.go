package gql

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"

	"github.com/kiem-io/kiem/graph"
)

// MarshalRevision writes a revision as a JSON number: revisions stay far below 2^53, so every client reads
// them exactly.
func MarshalRevision(r graph.Revision) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { _, _ = io.WriteString(w, strconv.FormatUint(uint64(r), 10)) })
}

// UnmarshalRevision reads a revision from a number or a numeric string.
func UnmarshalRevision(v any) (graph.Revision, error) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case int:
		s = strconv.Itoa(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	case float64:
		if v < 0 || v != float64(uint64(v)) {
			return 0, userErrorf("revision %v: want a whole number ≥ 0", v)
		}
		return graph.Revision(v), nil
	default:
		return 0, userErrorf("revision: want a number, got %T", v)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, userErrorf("revision %q: want a whole number ≥ 0", s)
	}
	return graph.Revision(n), nil
}

// MarshalRawJSON writes an object as kiem stores it, as is (the JSON scalar).
func MarshalRawJSON(m json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(m) == 0 {
			_, _ = io.WriteString(w, "null")
			return
		}
		_, _ = w.Write(m)
	})
}

// UnmarshalRawJSON accepts any JSON value.
func UnmarshalRawJSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("JSON: %w", err)
	}
	return b, nil
}
