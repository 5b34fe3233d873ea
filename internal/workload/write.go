package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/kiem-io/kiem/graph"
)

// Document parts of a `kind: List`, laid out as `kubectl get -o yaml|json` lays them out.
const (
	yamlHead      = "apiVersion: v1\nitems:\n"
	yamlHeadEmpty = "apiVersion: v1\nitems: []\n"
	yamlTail      = "kind: List\nmetadata:\n  resourceVersion: \"\"\n"
	jsonHead      = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n"
	jsonHeadEmpty = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [],\n"
	jsonTail      = "\n    ],\n"
	jsonEnd       = "    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"
)

// chunkSize is the number of items one worker encodes at a time: big enough to amortise the hand-over, small
// enough that the chunks in flight stay a few megabytes.
const chunkSize = 256

// Write writes objs to w as one `apiVersion: v1, kind: List` document in format "yaml" or "json", whose items
// are the API objects with apiVersion and kind set, as `kubectl get -o yaml` writes them; `kiem --snapshot` and
// kubectl read it back. Items come in apply order: namespaces, ClusterRoles, ClusterRoleBindings,
// ServiceAccounts, Roles, RoleBindings, pods. Pods carry only what graph.Pod models (no containers).
//
// Write streams: items are encoded in chunks by GOMAXPROCS workers and written in order as they complete, so
// memory stays bounded whatever the size. The output depends on objs only. It returns the first encoding or
// write error; w may then hold a partial document.
func Write(w io.Writer, objs *graph.Objects, format string) error {
	if objs == nil {
		objs = &graph.Objects{}
	}
	l := newItems(objs)
	var head, tail string
	var enc func() encodeFunc
	switch format {
	case "yaml":
		head, tail, enc = yamlHead, yamlTail, newEncoder(l, true)
		if l.len() == 0 {
			head, tail = yamlHeadEmpty, yamlTail
		}
	case "json":
		head, tail, enc = jsonHead, jsonTail+jsonEnd, newEncoder(l, false)
		if l.len() == 0 {
			head, tail = jsonHeadEmpty, jsonEnd
		}
	default:
		return fmt.Errorf("write list: unknown format %q (want yaml or json)", format)
	}
	if _, err := io.WriteString(w, head); err != nil {
		return fmt.Errorf("write list: %w", err)
	}
	if err := writeItems(w, l.len(), enc); err != nil {
		return fmt.Errorf("write list: %w", err)
	}
	if _, err := io.WriteString(w, tail); err != nil {
		return fmt.Errorf("write list: %w", err)
	}
	return nil
}

// encodeFunc appends the encoding of item i to dst. Each worker gets its own, so it may keep scratch state.
type encodeFunc func(dst []byte, i int) ([]byte, error)

// newEncoder returns a maker of encoders of item i: one line of compact JSON preceded by ",\n" unless it is the
// first item, or with asYAML a YAML block-sequence entry ("- " before its first line, two spaces before the
// others; see yaml.go for why it transcodes the JSON). HTML characters are not escaped, as kubectl does not
// escape them.
func newEncoder(l items, asYAML bool) func() encodeFunc {
	return func() encodeFunc {
		var buf bytes.Buffer
		je := json.NewEncoder(&buf)
		je.SetEscapeHTML(false)
		return func(dst []byte, i int) ([]byte, error) {
			obj, ref := l.at(i)
			buf.Reset()
			if err := je.Encode(obj); err != nil {
				return dst, fmt.Errorf("encode %s: %w", ref, err)
			}
			js := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
			if !asYAML {
				if i > 0 {
					dst = append(dst, ",\n"...)
				}
				return append(dst, js...), nil
			}
			dst, err := appendYAMLItem(dst, js)
			if err != nil {
				return dst, fmt.Errorf("encode %s: %w", ref, err)
			}
			return append(dst, '\n'), nil
		}
	}
}

// chunk is a range of items that one worker encodes; done is closed when buf or err is set.
type chunk struct {
	from, to int
	buf      []byte
	err      error
	done     chan struct{}
}

// writeItems encodes items [0, n) on GOMAXPROCS workers and writes them to w in order. A feeder hands chunks to
// the workers and, in the same order, to the writing loop, through a buffer that bounds the chunks in flight.
// Every goroutine is waited for before writeItems returns; after an error the chunks in flight are drained and
// no new ones are made.
func writeItems(w io.Writer, n int, newEnc func() encodeFunc) error {
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan *chunk)
	ordered := make(chan *chunk, 2*workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		enc := newEnc()
		wg.Go(func() {
			for c := range jobs {
				for i := c.from; i < c.to && c.err == nil; i++ {
					c.buf, c.err = enc(c.buf, i)
				}
				close(c.done)
			}
		})
	}
	wg.Go(func() {
		defer close(ordered)
		defer close(jobs)
		for from := 0; from < n; from += chunkSize {
			c := &chunk{from: from, to: min(from+chunkSize, n), done: make(chan struct{})}
			select {
			case <-stop:
				return
			case ordered <- c:
			}
			jobs <- c // a chunk in ordered is always handed to a worker, so the writing loop never waits forever
		}
	})
	var err error
	for c := range ordered {
		<-c.done
		if err != nil {
			continue
		}
		if err = c.err; err == nil {
			_, err = w.Write(c.buf)
		}
		if err != nil {
			close(stop)
		}
	}
	wg.Wait()
	return err
}
