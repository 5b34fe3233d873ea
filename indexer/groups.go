package indexer

import (
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
)

// LoadGroups reads a groups file: a YAML or JSON map from user name to the groups the user belongs to, as an
// identity provider knows them (RBAC objects never say which groups a human's token carries):
//
//	alice@example.com: [oidc:payments-developers, oidc:auditors]
//	bob@example.com: [oidc:contractors]
//
// Each entry becomes a graph.User (Origin "file"); groups are kept in the order given, without repeats. A
// malformed file is an error naming it (and the line, when the YAML parser knows it); nothing is loaded then.
func LoadGroups(path string) ([]graph.User, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("groups file: %w", err)
	}
	return parseGroups(path, data)
}

// LoadGroupsFS is LoadGroups over an fs.FS.
func LoadGroupsFS(fsys fs.FS, path string) ([]graph.User, error) {
	data, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("groups file: %w", err)
	}
	return parseGroups(path, data)
}

func parseGroups(path string, data []byte) ([]graph.User, error) {
	var m map[string][]string
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf("groups file %s: want a map from user name to a list of groups: %w", path, err)
	}
	users := make([]graph.User, 0, len(m))
	for name, groups := range m {
		if name == "" {
			return nil, fmt.Errorf("groups file %s: an entry has an empty user name", path)
		}
		var gs []string
		for _, g := range groups {
			if g == "" {
				return nil, fmt.Errorf("groups file %s: user %q has an empty group name", path, name)
			}
			if !slices.Contains(gs, g) {
				gs = append(gs, g)
			}
		}
		users = append(users, graph.User{Meta: graph.Meta{Name: name, Origin: path}, Groups: gs})
	}
	slices.SortFunc(users, func(a, b graph.User) int { return strings.Compare(a.Name, b.Name) })
	return users, nil
}
