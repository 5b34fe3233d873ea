package main

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiem-io/kiem/graph"
)

type permissionsFlags struct {
	src       sourceFlags
	as        string
	asGroups  []string
	sa        string
	namespace string
	output    outputFlag
}

// permissionsAnswer is the JSON form of `kiem permissions`.
type permissionsAnswer struct {
	Identity    graph.Identity     `json:"identity"`
	Superuser   bool               `json:"superuser"`
	Permissions []graph.Permission `json:"permissions"`
}

func newPermissionsCmd(s streams) *cobra.Command {
	var f permissionsFlags
	cmd := &cobra.Command{
		Use:   "permissions (--as USER [--as-group GROUP]... | --sa NAMESPACE/NAME)",
		Short: "List the effective permissions of a user or ServiceAccount, with where each comes from",
		Long: `List every rule granted to an identity: rules of ClusterRoleBindings apply cluster-wide (scope '*'),
rules of RoleBindings only in their namespace. Each row names the binding and role that grant it.

--as builds the identity as impersonation does (see 'kiem can-i --help'); --sa NS/NAME is a ServiceAccount's token:
its user name in system:serviceaccounts, system:serviceaccounts:NS and system:authenticated. Members of
system:masters are allowed everything before RBAC; that is reported, not listed as rules.`,
		Example: `  kiem permissions --sa kube-system/coredns --demo
  kiem permissions --as alice --as-group devs -n team-a --snapshot cluster.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.output.validate(); err != nil {
				return err
			}
			if _, err := permissionsIdentity(&f, nil); err != nil {
				return err // bad flags fail before any loading
			}
			snap, err := f.src.load(cmd.Context())
			if err != nil {
				return err
			}
			id, err := permissionsIdentity(&f, snap)
			if err != nil {
				return err
			}
			var perms []graph.Permission
			err = snap.VisitPermissions(cmd.Context(), id, func(p graph.Permission) bool {
				if f.namespace == "" || p.Namespace == "" || p.Namespace == f.namespace {
					perms = append(perms, p)
				}
				return true
			})
			if err != nil {
				return err
			}
			ans := permissionsAnswer{Identity: id, Superuser: id.InGroup(graph.GroupMasters), Permissions: perms}
			if ans.Permissions == nil {
				ans.Permissions = []graph.Permission{}
			}
			if f.output == "json" {
				return writeJSON(s.out, ans)
			}
			if ans.Superuser {
				s.out.Write([]byte("superuser: member of system:masters, allowed everything before RBAC\n"))
			}
			t := newTable(s.out, "SCOPE", "VERBS", "APIGROUPS", "RESOURCES", "NAMES/URLS", "VIA")
			for _, p := range perms {
				scope := p.Namespace
				if scope == "" {
					scope = "*"
				}
				groups := p.Rule.APIGroups
				if len(groups) == 1 && groups[0] == "" {
					groups = []string{`""`}
				}
				names := append(append([]string{}, p.Rule.ResourceNames...), p.Rule.NonResourceURLs...)
				t.row(scope, strings.Join(p.Rule.Verbs, ","), strings.Join(groups, ","), strings.Join(p.Rule.Resources, ","),
					strings.Join(names, ","), p.Binding.String()+" -> "+p.Role.String())
			}
			return t.flush()
		},
	}
	fl := cmd.Flags()
	f.src.register(fl)
	fl.StringVar(&f.as, "as", "", "user name, as with kubectl --as")
	fl.StringArrayVar(&f.asGroups, "as-group", nil, "group of the user (repeatable)")
	fl.StringVar(&f.sa, "sa", "", "ServiceAccount as NAMESPACE/NAME")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "only permissions that apply in this namespace (cluster-wide ones included)")
	fl.StringVarP((*string)(&f.output), "output", "o", "table", "output format: table or json")
	return cmd
}

// permissionsIdentity builds the identity of the flags; snap, when given, supplies declared groups (see
// declaredGroups).
func permissionsIdentity(f *permissionsFlags, snap *graph.Snapshot) (graph.Identity, error) {
	switch {
	case f.sa != "" && (f.as != "" || len(f.asGroups) > 0):
		return graph.Identity{}, errors.New("--sa excludes --as and --as-group")
	case f.sa != "":
		ns, name, ok := strings.Cut(f.sa, "/")
		if !ok || ns == "" || name == "" {
			return graph.Identity{}, errors.New("--sa takes NAMESPACE/NAME")
		}
		return graph.ServiceAccountIdentity(ns, name), nil
	case f.as != "" && snap != nil:
		return graph.ImpersonatedIdentity(f.as, declaredGroups(snap, f.as, f.asGroups)), nil
	case f.as != "":
		return graph.ImpersonatedIdentity(f.as, f.asGroups), nil
	case len(f.asGroups) > 0:
		return graph.Identity{}, errors.New("--as-group needs --as, as impersonation does")
	}
	return graph.Identity{}, errors.New("give --as USER [--as-group GROUP]... or --sa NAMESPACE/NAME")
}
