// Package manifest reads Kubernetes manifests as people write them:
// multi-document YAML or JSON files, directories of them, standard input,
// and List objects, keeping the file and line of every object for messages.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/internal/kinds"
)

// MaxFileSize bounds one input file (the API server takes objects of at
// most 3 MiB; a bundle is many of them).
const MaxFileSize = 64 << 20

// Object is one decoded object and where it came from.
type Object struct {
	File string
	Line int
	GVK  schema.GroupVersionKind
	// Object is the typed object, or nil for kinds tenantguard has no type
	// for (they are kept so callers can count them).
	Object runtime.Object
	// Removed is set when the object was written in an API version that
	// Kubernetes no longer serves; GVK and Object are then the version that
	// replaces it, so that its rules apply.
	Removed *kinds.Removed
}

// Error is an input that cannot be read, with its place.
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ReadPaths reads files, directories (their .yaml, .yml and .json files,
// recursively, in lexical order) and "-" (stdin).
func ReadPaths(paths []string, stdin io.Reader) ([]Object, error) {
	var out []Object
	for _, p := range paths {
		if p == "-" {
			data, err := readAll("<stdin>", stdin)
			if err != nil {
				return nil, err
			}
			objs, err := Parse("<stdin>", data)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return nil, &Error{File: f, Err: err}
			}
			data, err := readAll(f, fh)
			fh.Close()
			if err != nil {
				return nil, err
			}
			objs, err := Parse(f, data)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func readAll(name string, r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: name, Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Err: fmt.Errorf("larger than %d MiB", MaxFileSize>>20)}
	}
	return data, nil
}

func expand(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, &Error{File: p, Err: err}
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, &Error{File: p, Err: err}
	}
	sort.Strings(files)
	return files, nil
}

// Parse decodes every object in data: YAML documents separated by "---"
// lines, or JSON; List kinds are flattened into their items. Unknown or
// duplicate fields are errors, as `kubectl apply` makes them.
func Parse(file string, data []byte) ([]Object, error) {
	var out []Object
	for _, doc := range splitDocuments(data) {
		if isBlank(doc.data) {
			continue
		}
		objs, err := decodeDocument(file, doc.line+leadingComments(doc.data), doc.data)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

type document struct {
	line int
	data []byte
}

// splitDocuments cuts YAML at lines that start with "---", remembering the
// first line of each document.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine, line := 0, 1, 1
	for i := 0; i <= len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += i
		}
		if bytes.HasPrefix(data[i:end], []byte("---")) {
			docs = append(docs, document{line: startLine, data: data[start:i]})
			start, startLine = end+1, line+1
		}
		i, line = end+1, line+1
	}
	if start < len(data) {
		docs = append(docs, document{line: startLine, data: data[start:]})
	}
	return docs
}

// leadingComments counts the blank and comment lines before the object, so
// that messages point at its first line.
func leadingComments(doc []byte) int {
	n := 0
	for _, l := range bytes.Split(doc, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return n
		}
		n++
	}
	return n
}

func isBlank(doc []byte) bool {
	for _, l := range bytes.Split(doc, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

func decodeDocument(file string, line int, data []byte) ([]Object, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, &Error{File: file, Line: line, Err: fmt.Errorf("not valid YAML or JSON: %w", err)}
	}
	if bytes.HasPrefix(bytes.TrimSpace(js), []byte("[")) {
		return nil, &Error{File: file, Line: line, Err: errors.New("a top-level array is not a Kubernetes object; wrap the items in a List")}
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		return nil, &Error{File: file, Line: line, Err: fmt.Errorf("not a Kubernetes object (it needs apiVersion and kind): %w", err)}
	}
	if u.IsList() {
		list, err := u.ToList()
		if err != nil {
			return nil, &Error{File: file, Line: line, Err: err}
		}
		var out []Object
		for i := range list.Items {
			item, err := list.Items[i].MarshalJSON()
			if err != nil {
				return nil, &Error{File: file, Line: line, Err: err}
			}
			objs, err := decodeDocument(file, line, item)
			if err != nil {
				return nil, &Error{File: file, Line: line, Err: fmt.Errorf("item %d: %w", i, errors.Unwrap(err))}
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	gvk := u.GroupVersionKind()
	obj, _, err := kinds.DecodeStrict(js)
	var unknown *kinds.UnknownKindError
	switch {
	case errors.As(err, &unknown) && gvk.Group == kinds.GatewayV1.Group && gvk.Version != kinds.GatewayV1.Version:
		// An older Gateway API version of a kind with rules: judge it as v1,
		// whose host fields it shares, rather than pass over it.
		u.SetAPIVersion(kinds.GatewayV1.String())
		v1, err := u.MarshalJSON()
		if err != nil {
			return nil, &Error{File: file, Line: line, Err: err}
		}
		if obj, _, err := kinds.Decode(v1); err == nil {
			return []Object{{File: file, Line: line, GVK: kinds.GatewayV1.WithKind(gvk.Kind), Object: obj}}, nil
		}
		return []Object{{File: file, Line: line, GVK: gvk}}, nil
	case errors.As(err, &unknown):
		return []Object{{File: file, Line: line, GVK: gvk}}, nil
	case err != nil:
		return nil, &Error{File: file, Line: line, Err: fmt.Errorf("%s %q: %w", gvk.Kind, u.GetName(), err)}
	}
	if r, ok := kinds.RemovedVersion(gvk); ok {
		up, err := kinds.Upgrade(r, obj, js)
		if err != nil {
			return nil, &Error{File: file, Line: line, Err: fmt.Errorf("%s %q: %w", gvk.Kind, u.GetName(), err)}
		}
		return []Object{{File: file, Line: line, GVK: r.To, Object: up, Removed: &r}}, nil
	}
	return []Object{{File: file, Line: line, GVK: gvk, Object: obj}}, nil
}
