package leasehold_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// exported lists the exported top-level names of the package in dir, tests
// left out.
func exported(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() {
					names[d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							names[s.Name.Name] = true
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								names[n.Name] = true
							}
						}
					}
				}
			}
		}
	}
	return names
}

// The front door: no name is exported by both leasehold and its engine,
// package supervisor.
func TestNoNameExportedTwice(t *testing.T) {
	root, engine := exported(t, "."), exported(t, "supervisor")
	if len(root) == 0 || len(engine) == 0 {
		t.Fatalf("found %d names in the root and %d in supervisor; the parse is broken", len(root), len(engine))
	}
	var twice []string
	for name := range engine {
		if root[name] {
			twice = append(twice, name)
		}
	}
	slices.Sort(twice)
	if len(twice) > 0 {
		t.Errorf("exported by both leasehold and supervisor: %v; a user's name belongs to leasehold only", twice)
	}
}

// Only the root package imports the engine: services, commands, examples
// and the debug endpoint use the front door, as users do.
func TestOnlyTheRootImportsTheEngine(t *testing.T) {
	const engine = "github.com/leasehold/leasehold/supervisor"
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "supervisor" || (path != "." && strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || filepath.Dir(path) == "." {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == engine {
				t.Errorf("%s imports %s: use package leasehold instead", path, engine)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
