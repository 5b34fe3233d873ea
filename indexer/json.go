package indexer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	sigsjson "sigs.k8s.io/json"
)

// decodeJSON converts the JSON document data, which the stream decoder has validated, into objects appended to
// out. def supplies apiVersion and kind to the items of a typed List; at is the path of data inside its document
// ("items[3]"), "" for the document itself. Every object gets origin, the position of its document.
func (c *converter) decodeJSON(data []byte, origin string, def typeMeta, at string, out []object) ([]object, error) {
	if got := jsonType(data); got != "object" {
		return out, atPath(at, fmt.Errorf("expected an object, got %s", got))
	}
	t, items, err := jsonHeader(data)
	if err != nil {
		return out, atPath(at, err)
	}
	t = t.withDefaults(def)
	if err := t.check(); err != nil {
		return out, atPath(at, err)
	}
	if t.isList(items != nil) {
		var list []json.RawMessage
		if err := unmarshal(items, &list); err != nil {
			return out, atPath(at, fmt.Errorf("items: %w", err))
		}
		for i, item := range list {
			if out, err = c.decodeJSON(item, origin, t.itemDefaults(), itemPath(at, i), out); err != nil {
				return out, err
			}
		}
		return out, nil
	}
	var d doc
	if kind, ok := loadedKind(t); ok {
		d = newDoc(kind)
		if err := unmarshal(data, d); err != nil {
			return out, atPath(at, fmt.Errorf("%s: %w", kind, err))
		}
	}
	o, err := c.convert(t, d, origin)
	if err != nil {
		return out, atPath(at, err)
	}
	return append(out, o), nil
}

// jsonHeader returns the type of the JSON object data and its raw items (nil when absent). It reads them with
// a scan of the top-level keys, several times cheaper than decoding, and decodes only when a key or value is
// spelt with escapes, or is not a string where one belongs, so that such documents get the decoder's verdict.
func jsonHeader(data []byte) (t typeMeta, items []byte, err error) {
	plain := scanObject(data, func(key, value []byte) bool {
		switch string(key) {
		case `"apiVersion"`:
			return plainString(value, &t.APIVersion)
		case `"kind"`:
			return plainString(value, &t.Kind)
		case `"items"`:
			items = value
		}
		return bytes.IndexByte(key, '\\') < 0
	})
	if plain {
		return t, items, nil
	}
	var h header
	err = unmarshal(data, &h)
	return typeMeta{APIVersion: h.APIVersion, Kind: h.Kind}, h.Items, err
}

// header is the top of a JSON document, decoded when scanning is not enough. Its name shows in type errors.
type header struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Items      json.RawMessage `json:"items"`
}

// plainString stores the JSON string value in *s if it has no escapes; null leaves *s as it is.
func plainString(value []byte, s *string) bool {
	if string(value) == "null" {
		return true
	}
	if len(value) < 2 || value[0] != '"' || bytes.IndexByte(value, '\\') >= 0 {
		return false
	}
	*s = string(value[1 : len(value)-1])
	return true
}

// jsonListItems cuts the items of a JSON List apart so that they can be decoded in parallel. data must be valid
// JSON. ok is false unless data is a List with a plain type and an items array.
func jsonListItems(data []byte) (def typeMeta, items [][]byte, ok bool) {
	if jsonType(data) != "object" {
		return typeMeta{}, nil, false
	}
	t, raw, err := jsonHeader(data)
	if err != nil || t.check() != nil || !t.isList(raw != nil) || jsonType(raw) != "array" {
		return typeMeta{}, nil, false
	}
	raw = bytes.TrimLeft(raw, " \t\r\n")
	for j := 1; ; {
		j = skipSpace(raw, j)
		if j >= len(raw) || raw[j] == ']' {
			break
		}
		if raw[j] == ',' {
			j++
			continue
		}
		end := skipValue(raw, j)
		items = append(items, raw[j:end])
		j = end
	}
	return t.itemDefaults(), items, true
}

// scanObject calls fn with the raw key and value of each top-level member of the JSON object data, which must be
// valid JSON, while fn returns true. It returns false if fn did, or if data is not an object.
func scanObject(data []byte, fn func(key, value []byte) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	for i++; ; {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] == '}' {
			return true
		}
		if data[i] == ',' {
			i++
			continue
		}
		keyEnd := skipValue(data, i)
		key := data[i:keyEnd]
		i = skipSpace(data, keyEnd)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		end := skipValue(data, i)
		if !fn(key, data[i:end]) {
			return false
		}
		i = end
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value that starts at i. data must be valid JSON.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				i = skipString(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(data) && strings.IndexByte(",}] \t\r\n", data[i]) < 0 {
		i++
	}
	return i
}

// skipString returns the end of the JSON string that starts at i.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// unmarshal decodes as the apiserver does: keys match json tags case-sensitively, and unknown keys are ignored.
func unmarshal(data []byte, v any) error {
	return sigsjson.UnmarshalCaseSensitivePreserveInts(data, v)
}

// jsonType names the type of the JSON value data, judged by its first byte.
func jsonType(data []byte) string {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return "nothing"
	}
	switch data[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}
