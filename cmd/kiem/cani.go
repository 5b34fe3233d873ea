package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiem-io/kiem/graph"
)

type canIFlags struct {
	src           sourceFlags
	namespace     string
	allNamespaces bool
	as            string
	asGroups      []string
	subresource   string
	why           bool
	quiet         bool
	batch         string
}

func newCanICmd(s streams) *cobra.Command {
	var f canIFlags
	cmd := &cobra.Command{
		Use:   "can-i VERB TYPE[/NAME] | VERB NONRESOURCEURL",
		Short: "Check whether an identity may perform an action, like 'kubectl auth can-i'",
		Long: `Check whether an identity may perform an action, answered as the kube-apiserver would answer
'kubectl auth can-i --as USER': prints yes or no and exits 0 for yes, 1 for no, 2 for errors.

The identity is built as the apiserver's impersonation builds it: a ServiceAccount user name
(system:serviceaccount:NS:NAME) given without --as-group gets the ServiceAccount groups, and every user but
system:anonymous is in system:authenticated. The namespace is 'default' unless -n or -A is given, even for
cluster-scoped resources, because kubectl sends it so; a RoleBinding in that namespace can then answer.

TYPE is a resource as kubectl takes it: pods, po, pod, deployments.apps, deploy, sa, rb,
deployments.v1.apps, widgets.example.com (custom resources are taken as given), or *.

--batch reads SubjectAccessReview-style JSON lines instead, one request per line:
  {"user","groups","verb","apiGroup","resource","subresource","namespace","name","nonResourceURL"}
taken literally (groups exactly as given, nothing added), and writes one JSON line per input line, in order:
  {"allowed": bool, "superuser": bool, "reasons": [grant paths]}  or  {"allowed": false, "error": "..."}
It exits 2 if any line was malformed.`,
		Example: `  kiem can-i list secrets -n kube-system --as system:serviceaccount:kube-system:coredns --demo
  kiem can-i create pods --subresource exec -n argocd --as alice --as-group devs --why --snapshot cluster.yaml
  kiem can-i get /metrics --as system:serviceaccount:monitoring:prometheus-k8s --demo
  kiem can-i --batch requests.jsonl --snapshot cluster.yaml`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if f.batch != "" {
				if len(args) > 0 {
					return errors.New("--batch takes no VERB or TYPE arguments")
				}
				return runBatch(ctx, s, &f)
			}
			return runCanI(ctx, s, &f, args)
		},
	}
	fl := cmd.Flags()
	f.src.register(fl)
	fl.StringVarP(&f.namespace, "namespace", "n", "default", "namespace of the request")
	fl.BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "ask for all namespaces: the request carries no namespace")
	fl.StringVar(&f.as, "as", "", "user name to check, as with kubectl --as (system:serviceaccount:NS:NAME for a ServiceAccount)")
	fl.StringArrayVar(&f.asGroups, "as-group", nil, "group to check the user in (repeatable), as with kubectl --as-group")
	fl.StringVar(&f.subresource, "subresource", "", "subresource, such as exec, log or scale")
	fl.BoolVar(&f.why, "why", false, "print every grant path (binding -> role -> rule) behind the answer")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing; only the exit code tells")
	fl.StringVar(&f.batch, "batch", "", "read JSON requests from FILE ('-' for stdin), one per line")
	return cmd
}

// canIRequest turns can-i's arguments into the identity and action kubectl would send.
func canIRequest(f *canIFlags, args []string, snap *graph.Snapshot, warn func(string)) (graph.Identity, graph.Action, error) {
	if len(args) != 2 {
		return graph.Identity{}, graph.Action{}, errors.New("you must specify two arguments: verb resource or verb resource/resourceName (see 'kiem can-i --help')")
	}
	if f.as == "" {
		return graph.Identity{}, graph.Action{}, errors.New("--as USER is required: kiem checks other identities, it has none of its own")
	}
	id := graph.ImpersonatedIdentity(f.as, declaredGroups(snap, f.as, f.asGroups))
	a := graph.Action{Verb: args[0]}
	if strings.HasPrefix(args[1], "/") {
		if f.subresource != "" {
			return id, a, errors.New("--subresource can not be used with NonResourceURL")
		}
		a.NonResourceURL = args[1]
		if !knownVerb(a.Verb, true) {
			warn(fmt.Sprintf("verb '%s' is not a known verb", a.Verb))
		}
		return id, a, nil
	}
	typ, name, _ := strings.Cut(args[1], "/")
	res := resolveResource(typ, rulesGroupsOf(snap))
	if res.note != "" {
		warn(res.note)
	}
	a.APIGroup, a.Resource, a.Subresource, a.Name = res.group, res.resource, f.subresource, name
	if !f.allNamespaces {
		a.Namespace = f.namespace
		if res.known && !res.namespaced {
			if res.group == "" {
				warn(fmt.Sprintf("resource '%s' is not namespace scoped", res.resource))
			} else {
				warn(fmt.Sprintf("resource '%s' is not namespace scoped in group '%s'", res.resource, res.group))
			}
		}
	}
	if !knownVerb(a.Verb, false) {
		warn(fmt.Sprintf("verb '%s' is not a known verb", a.Verb))
	}
	return id, a, nil
}

// declaredGroups returns the groups to check user in: those given with --as-group, else those a groups file
// declares for the user (kubectl has no such file: without one the answer is kubectl's).
func declaredGroups(snap *graph.Snapshot, user string, asGroups []string) []string {
	if len(asGroups) > 0 {
		return asGroups
	}
	return snap.GroupsOf(user)
}

// rulesGroupsOf returns a function listing the API groups the snapshot's rules name a resource under, for
// resolving custom resource types given without a group.
func rulesGroupsOf(snap *graph.Snapshot) func(string) []string {
	return func(resource string) []string {
		seen := map[string]bool{}
		var groups []string
		visit := func(roles []graph.Role) {
			for _, r := range roles {
				for _, rule := range r.Rules {
					if !containsResource(rule.Resources, resource) {
						continue
					}
					for _, g := range rule.APIGroups {
						if g != "*" && !seen[g] {
							seen[g] = true
							groups = append(groups, g)
						}
					}
				}
			}
		}
		visit(snap.Objects().ClusterRoles)
		visit(snap.Objects().Roles)
		return groups
	}
}

func containsResource(resources []string, resource string) bool {
	for _, r := range resources {
		if base, _, _ := strings.Cut(r, "/"); base == resource {
			return true
		}
	}
	return false
}

func runCanI(ctx context.Context, s streams, f *canIFlags, args []string) error {
	snap, err := f.src.load(ctx)
	if err != nil {
		return err
	}
	out := s.out
	if f.quiet {
		out = io.Discard
	}
	warn := func(msg string) {
		if !f.quiet {
			fmt.Fprintf(s.err, "Warning: %s\n", msg)
		}
	}
	id, a, err := canIRequest(f, args, snap, warn)
	if err != nil {
		return err
	}
	d := snap.Can(id, a)
	if d.Allowed {
		fmt.Fprintln(out, "yes")
	} else {
		fmt.Fprintln(out, "no")
	}
	if f.why {
		printWhy(out, id, d)
	}
	if !d.Allowed {
		return exitCode(exitNo)
	}
	return nil
}

func printWhy(w io.Writer, id graph.Identity, d graph.Decision) {
	fmt.Fprintf(w, "identity: user %q in groups [%s]\n", id.User, strings.Join(id.Groups, ", "))
	if d.Superuser {
		fmt.Fprintf(w, "allowed by the superuser group %s, before RBAC is consulted\n", graph.GroupMasters)
	}
	for _, p := range d.Reasons {
		fmt.Fprintf(w, "allowed by %s\n", p.Explain())
	}
	if !d.Allowed {
		fmt.Fprintln(w, "no binding grants it (RBAC only: Node and webhook authorizers are outside what RBAC objects show)")
	}
}

// batchRequest is one line of --batch input: the attributes of a SubjectAccessReview.
type batchRequest struct {
	User           string   `json:"user"`
	Groups         []string `json:"groups"`
	Verb           string   `json:"verb"`
	APIGroup       string   `json:"apiGroup"`
	Resource       string   `json:"resource"`
	Subresource    string   `json:"subresource"`
	Namespace      string   `json:"namespace"`
	Name           string   `json:"name"`
	NonResourceURL string   `json:"nonResourceURL"`
}

type batchAnswer struct {
	Allowed   bool              `json:"allowed"`
	Superuser bool              `json:"superuser,omitempty"`
	Reasons   []graph.GrantPath `json:"reasons"`
	Error     string            `json:"error,omitempty"`
}

func runBatch(ctx context.Context, s streams, f *canIFlags) error {
	in := s.in
	if f.batch != "-" {
		file, err := os.Open(f.batch)
		if err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		defer file.Close()
		in = file
	}
	snap, err := f.src.load(ctx)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	w := bufio.NewWriterSize(s.out, 256*1024)
	enc := json.NewEncoder(w)
	bad := 0
	for line := 1; sc.Scan(); line++ {
		if line%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ans := answerBatchLine(snap, sc.Bytes(), line)
		if ans.Error != "" {
			bad++
		}
		if err := enc.Encode(ans); err != nil {
			return fmt.Errorf("batch: write: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("batch: read: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("batch: write: %w", err)
	}
	if bad > 0 {
		fmt.Fprintf(s.err, "error: %d malformed request line(s); their answers carry an error\n", bad)
		return exitCode(exitError)
	}
	return nil
}

func answerBatchLine(snap *graph.Snapshot, raw []byte, line int) batchAnswer {
	var req batchRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return batchAnswer{Reasons: []graph.GrantPath{}, Error: fmt.Sprintf("line %d: %v", line, err)}
	}
	if req.User == "" && len(req.Groups) == 0 {
		// The apiserver rejects such a SubjectAccessReview.
		return batchAnswer{Reasons: []graph.GrantPath{}, Error: fmt.Sprintf("line %d: at least one of user or groups must be specified", line)}
	}
	// With a nonResourceURL the request is a non-resource request and the resource attributes play no part, as
	// in a SubjectAccessReview with nonResourceAttributes.
	d := snap.Can(graph.Identity{User: req.User, Groups: req.Groups}, graph.Action{
		Verb: req.Verb, APIGroup: req.APIGroup, Resource: req.Resource, Subresource: req.Subresource,
		Namespace: req.Namespace, Name: req.Name, NonResourceURL: req.NonResourceURL,
	})
	if d.Reasons == nil {
		d.Reasons = []graph.GrantPath{}
	}
	return batchAnswer{Allowed: d.Allowed, Superuser: d.Superuser, Reasons: d.Reasons}
}
