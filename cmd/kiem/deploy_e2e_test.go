package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/kubetest"
	"github.com/kiem-io/kiem/internal/testutil"
	"github.com/kiem-io/kiem/queries"
)

// The deployment artifacts: the Helm chart deploy/helm/kiem rendered by `make manifests` with its default values
// (kiem.yaml) and with the values of deploy/helm/kiem/ci (examples/). `make check-manifests` keeps them what the
// chart renders; these tests hold them to a real apiserver and to kiem itself.
const (
	deployNS        = "kiem"
	deployName      = "kiem"
	manifestDefault = "../../deploy/manifests/kiem.yaml"
	// indexSecrets: true with auth.mode kubernetes and the audience kiem.
	manifestSecrets = "../../deploy/manifests/examples/index-secrets.yaml"
	// auth.mode token, TLS, indexSecrets, filters, packs and groups from ConfigMaps, webhook egress.
	manifestTokenTLS = "../../deploy/manifests/examples/token-tls.yaml"
)

var deployManifests = []string{manifestDefault, manifestSecrets, manifestTokenTLS}

// manifestDoc is one YAML document of a rendered manifest.
type manifestDoc struct {
	kind, name string
	raw        string
}

// manifest is a rendered manifest file, split into its documents.
type manifest struct {
	path string
	docs []manifestDoc
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func loadManifest(t *testing.T, path string) *manifest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (render it with `make manifests`)", err)
	}
	m := &manifest{path: path}
	for _, raw := range docSeparator.Split(string(data), -1) {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(raw), &head); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if head.Kind == "" {
			continue // comments only
		}
		m.docs = append(m.docs, manifestDoc{kind: head.Kind, name: head.Metadata.Name, raw: raw})
	}
	return m
}

// only returns the documents of these kinds, in the manifest's order.
func (m *manifest) only(kinds ...string) []manifestDoc {
	var out []manifestDoc
	for _, d := range m.docs {
		if slices.Contains(kinds, d.kind) {
			out = append(out, d)
		}
	}
	return out
}

// object decodes the one document of kind into v, strictly: a field the Go type lacks is an error.
func (m *manifest) object(t *testing.T, kind string, v any) {
	t.Helper()
	docs := m.only(kind)
	if len(docs) != 1 {
		t.Fatalf("%s has %d %s documents, want 1", m.path, len(docs), kind)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[0].raw), v); err != nil {
		t.Fatalf("%s: %s: %v", m.path, kind, err)
	}
}

// writeDocs writes docs as one multi-document YAML file and returns its path.
func writeDocs(t *testing.T, name string, docs []manifestDoc) string {
	t.Helper()
	var b strings.Builder
	for _, d := range docs {
		b.WriteString("---\n")
		b.WriteString(strings.Trim(d.raw, "\n"))
		b.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (m *manifest) statefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	var sts appsv1.StatefulSet
	m.object(t, "StatefulSet", &sts)
	return &sts
}

// kiemContainer returns the StatefulSet's kiem container.
func kiemContainer(t *testing.T, sts *appsv1.StatefulSet) *corev1.Container {
	t.Helper()
	for i := range sts.Spec.Template.Spec.Containers {
		if c := &sts.Spec.Template.Spec.Containers[i]; c.Name == "kiem" {
			return c
		}
	}
	t.Fatalf("StatefulSet %s has no container kiem", sts.Name)
	return nil
}

// TestDeployManifestsShape checks what the apiserver does not: the StatefulSet's arguments are flags of kiem serve,
// every file they name is on a mounted volume, the probes and the Service reach the port kiem listens on, and
// the pod is the single replica the store allows.
func TestDeployManifestsShape(t *testing.T) {
	for _, path := range deployManifests {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m := loadManifest(t, path)
			if ns := m.only("Namespace"); len(ns) != 1 || !strings.Contains(ns[0].raw, "pod-security.kubernetes.io/enforce: restricted") {
				t.Errorf("the manifest does not start with a Namespace enforcing Pod Security restricted: %+v", ns)
			}
			sts := m.statefulSet(t)
			if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
				t.Errorf("replicas %v, want 1: Badger locks its directory", sts.Spec.Replicas)
			}
			c := kiemContainer(t, sts)
			if len(c.Args) == 0 || c.Args[0] != "serve" {
				t.Fatalf("args %q, want serve first", c.Args)
			}
			cmd := newServeCmd(streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard})
			if err := cmd.ParseFlags(c.Args[1:]); err != nil {
				t.Fatalf("kiem serve refuses the manifest's arguments %q: %v", c.Args[1:], err)
			}
			if rest := cmd.Flags().Args(); len(rest) > 0 {
				t.Errorf("arguments kiem serve takes for positional: %q", rest)
			}
			mounted := func(file string) bool {
				return slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
					return file == vm.MountPath || strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")
				})
			}
			for _, name := range []string{"data-dir", "token-file", "tls-cert-file", "tls-key-file", "filters", "groups-file"} {
				if v := cmd.Flags().Lookup(name).Value.String(); v != "" && !mounted(v) {
					t.Errorf("--%s=%s is on no mounted volume", name, v)
				}
			}
			packs, err := cmd.Flags().GetStringSlice("packs")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range packs {
				if !mounted(p) {
					t.Errorf("--packs=%s is on no mounted volume", p)
				}
			}
			listen := cmd.Flags().Lookup("listen").Value.String()
			port, err := strconv.Atoi(listen[strings.LastIndexByte(listen, ':')+1:])
			if err != nil {
				t.Fatalf("--listen=%s: %v", listen, err)
			}
			if len(c.Ports) != 1 || c.Ports[0].ContainerPort != int32(port) {
				t.Fatalf("container ports %+v, want the one of --listen=%s", c.Ports, listen)
			}
			portName := c.Ports[0].Name
			tls := cmd.Flags().Lookup("tls-cert-file").Value.String() != ""
			wantScheme := corev1.URISchemeHTTP
			if tls {
				wantScheme = corev1.URISchemeHTTPS
			}
			for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("no %s probe over HTTP", name)
					continue
				}
				if p.HTTPGet.Port.String() != portName || p.HTTPGet.Scheme != wantScheme {
					t.Errorf("%s probe on %s %s, want %s %s", name, p.HTTPGet.Scheme, p.HTTPGet.Port.String(), wantScheme, portName)
				}
			}
			if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("liveness on %s and readiness on %s, want /healthz and /readyz", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
			}
			var svc corev1.Service
			m.object(t, "Service", &svc)
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != portName {
				t.Errorf("Service ports %+v, want the target %s", svc.Spec.Ports, portName)
			}
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }) {
				t.Error("no GOMEMLIMIT")
			}
			var np networkingv1.NetworkPolicy
			m.object(t, "NetworkPolicy", &np)
			for _, in := range np.Spec.Ingress {
				if len(in.Ports) != 1 || in.Ports[0].Port == nil || in.Ports[0].Port.IntValue() != port {
					t.Errorf("NetworkPolicy admits ports %+v, want only %d", in.Ports, port)
				}
			}

			// Least privilege: read what kiem indexes, and with --auth=kubernetes create the two reviews. Nothing else.
			secrets, err := cmd.Flags().GetBool("index-secrets")
			if err != nil {
				t.Fatal(err)
			}
			want := []string{}
			for _, res := range []string{"namespaces", "serviceaccounts", "pods", "nodes"} {
				want = append(want, "/"+res+" get,list,watch")
			}
			if secrets {
				want = append(want, "/secrets get,list,watch")
			}
			for _, res := range []string{"roles", "clusterroles", "rolebindings", "clusterrolebindings"} {
				want = append(want, "rbac.authorization.k8s.io/"+res+" get,list,watch")
			}
			if cmd.Flags().Lookup("auth").Value.String() == "kubernetes" {
				want = append(want, "authentication.k8s.io/tokenreviews create", "authorization.k8s.io/subjectaccessreviews create")
			}
			var role rbacv1.ClusterRole
			m.object(t, "ClusterRole", &role)
			got := []string{}
			for _, r := range role.Rules {
				if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
					t.Errorf("unexpected rule %+v", r)
				}
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						got = append(got, g+"/"+res+" "+strings.Join(r.Verbs, ","))
					}
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("ClusterRole grants\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			var binding rbacv1.ClusterRoleBinding
			m.object(t, "ClusterRoleBinding", &binding)
			if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Kind != rbacv1.ServiceAccountKind ||
				binding.Subjects[0].Name != sts.Spec.Template.Spec.ServiceAccountName || binding.Subjects[0].Namespace != sts.Namespace {
				t.Errorf("ClusterRoleBinding %+v does not bind ClusterRole %s to the pod's ServiceAccount", binding, role.Name)
			}
		})
	}
}

// TestDeployManifestsScan runs kiem's own risk packs over the manifests: kiem deployed with the default values
// holds nothing risky at medium or above. With indexSecrets it can list Secrets everywhere, and kiem says so,
// about that grant only.
func TestDeployManifestsScan(t *testing.T) {
	if r := kiem(t, "", "scan", "--fail-on", "medium", manifestDefault); r.code != 0 {
		t.Fatalf("kiem scan --fail-on medium %s: exit %d\n%s%s", manifestDefault, r.code, r.out, r.err)
	}
	// What --index-secrets costs: list and watch on secrets in every namespace, which RBAC cannot narrow to
	// metadata. Exactly these two findings, standing on that rule of kiem's ClusterRole alone.
	sa := ref(graph.KindServiceAccount, deployNS, deployName)
	pod := ref(graph.KindPod, deployNS, "statefulset/"+deployName)
	for _, path := range []string{manifestSecrets, manifestTokenTLS} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			rep, r := scanJSON(t, "--fail-on", "medium", path)
			var got []string
			for _, fd := range rep.Findings {
				if fd.Status != queries.StatusRisky || fd.Severity < queries.SeverityMedium {
					continue
				}
				who := fd.Subject
				if fd.Object != nil {
					who = fd.Object
				}
				got = append(got, fd.Rule+" "+who.String())
				for _, ev := range fd.Evidence {
					b, err := json.Marshal(ev)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(string(b), `"secrets"`) || !strings.Contains(string(b), `"ClusterRoleBinding"`) {
						t.Errorf("%s: evidence %s is not the secrets rule of kiem's ClusterRole", fd.Rule, b)
					}
				}
			}
			slices.Sort(got)
			want := []string{"KIEM-CIS-5.1.2 " + sa.String(), "KIEM-WL-001 " + pod.String()}
			if !slices.Equal(got, want) || r.code != 1 {
				t.Errorf("risky findings at medium or above %q (exit %d), want %q (exit 1)\n%s", got, r.code, want, r.err)
			}
		})
	}
}

// kubectlRun runs kubectl against kubeconfig and returns its stdout and stderr.
func kubectlRun(t *testing.T, kubeconfig string, args ...string) (string, string, error) {
	t.Helper()
	kubectl, err := kubetest.Kubectl(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return string(out), stderr.String(), err
}

// kubectlWarnings are the warnings kubectl prints (Pod Security's "would violate", deprecated fields).
var kubectlWarnings = regexp.MustCompile(`(?m)^\s*Warning:.*$`)

// kubectl runs kubectl against kubeconfig and fails the test if it fails or prints a warning.
func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, stderr, err := kubectlRun(t, kubeconfig, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	for _, w := range kubectlWarnings.FindAllString(stderr, -1) {
		t.Errorf("kubectl %s warns: %s", strings.Join(args, " "), strings.TrimSpace(w))
	}
	return out
}

// podOf returns a pod made from the StatefulSet's template as its controller would make pod 0.
func podOf(sts *appsv1.StatefulSet) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: *sts.Spec.Template.ObjectMeta.DeepCopy(),
		Spec:       *sts.Spec.Template.Spec.DeepCopy(),
	}
	pod.Name, pod.Namespace = sts.Name+"-0", sts.Namespace
	for _, claim := range sts.Spec.VolumeClaimTemplates {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: claim.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name + "-" + pod.Name},
		}})
	}
	return pod
}

// writeTokenKubeconfig writes a kubeconfig that authenticates to the cluster with token, as the in-cluster config
// of kiem's pod does with its ServiceAccount's token.
func writeTokenKubeconfig(t *testing.T, cl *kubetest.Cluster, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cl.URL(), CertificateAuthorityData: cl.RESTConfig("admin").CAData}
	cfg.AuthInfos["kiem"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kiem"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "kiem"}
	cfg.CurrentContext = "kiem"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// servedKiem is `kiem serve` run with a manifest's arguments.
type servedKiem struct {
	url    string // http://127.0.0.1:PORT
	stderr *testutil.Buffer
	stop   func() int
}

// serveAsManifest runs `kiem serve` through run() with the StatefulSet's arguments, only the store and the
// address replaced (a temporary directory, a free loopback port), plus --kubeconfig and extra.
func serveAsManifest(t *testing.T, sts *appsv1.StatefulSet, kubeconfig string, extra ...string) *servedKiem {
	t.Helper()
	addr := freeAddr(t)
	args := slices.Clone(kiemContainer(t, sts).Args)
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--data-dir="):
			args[i] = "--data-dir=" + t.TempDir()
		case strings.HasPrefix(a, "--listen="):
			args[i] = "--listen=" + addr
		case strings.Contains(a, "/etc/kiem/"):
			t.Fatalf("argument %s reads a mounted file; run only manifests without", a)
		}
	}
	args = append(append(args, "--kubeconfig", kubeconfig), extra...)
	ctx, cancel := context.WithCancel(context.Background())
	s := &servedKiem{url: "http://" + addr, stderr: &testutil.Buffer{}}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), io.Discard, s.stderr) }()
	stopped, code := false, 0
	s.stop = func() int {
		if !stopped {
			stopped = true
			cancel()
			code = <-done
		}
		return code
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// clientLogs returns kiem's log lines but for its refusals of callers (which say "forbidden" when a caller lacks
// the RBAC for kiem's virtual resource).
func (s *servedKiem) clientLogs() string {
	var keep []string
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		if !strings.Contains(line, `msg="authentication refused"`) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// waitAllowed waits until the apiserver's authorizer grants the ServiceAccount every rule of role (its RBAC
// informers apply a new binding a moment after it is written), or until it refuses them all when allowed is false.
func waitAllowed(t *testing.T, cs kubernetes.Interface, ns, name string, rules []rbacv1.PolicyRule, allowed bool) {
	t.Helper()
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					eventually(t, 15*time.Second, "the authorizer applies "+v+" "+res+" for "+ns+"/"+name, func() bool {
						sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
							User: graph.ServiceAccountUsername(ns, name), Groups: graph.ServiceAccountGroups(ns),
							ResourceAttributes: &authorizationv1.ResourceAttributes{Group: g, Resource: res, Verb: v},
						}}, metav1.CreateOptions{})
						return err == nil && sar.Status.Allowed == allowed
					})
				}
			}
		}
	}
}

// TestDeployManifestsE2E holds the manifests to a real kube-apiserver (v1.33, Pod Security Admission on) and runs
// kiem as they deploy it:
//   - every manifest passes server-side dry-run (schema, strict field validation, Pod Security restricted: no
//     warning for the StatefulSet, and its pod admitted where restricted is enforced);
//   - kiem, with the manifest's arguments and a token of the manifest's ServiceAccount bound by the manifest's
//     ClusterRole, becomes ready and indexes without one forbidden request, and with --auth=kubernetes serves a
//     caller granted get on graph.kiem.io and refuses one without;
//   - the same with indexSecrets (and the audience kiem); and, to show the check can fail, with the default
//     ClusterRole but --index-secrets, kiem is refused and never ready.
func TestDeployManifestsE2E(t *testing.T) {
	cl := kubetest.Start(t, kubetest.Options{})
	ctx := t.Context()
	admin := cl.Kubeconfig("admin")
	cs := kubernetes.NewForConfigOrDie(cl.RESTConfig("admin"))
	manifests := map[string]*manifest{}
	for _, p := range deployManifests {
		manifests[p] = loadManifest(t, p)
	}
	def := manifests[manifestDefault]

	// The Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding for real: no kubelet runs the pod, so kiem
	// runs here with the ServiceAccount's token.
	kubectl(t, admin, "apply", "-f", writeDocs(t, "rbac.yaml", def.only("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")))

	t.Run("dry-run", func(t *testing.T) {
		for _, p := range deployManifests {
			out := kubectl(t, admin, "apply", "--dry-run=server", "-f", p)
			for _, d := range manifests[p].docs {
				// kubectl prints kind.group/name, lower case.
				applied := regexp.MustCompile(`(?m)^` + strings.ToLower(d.kind) + `(\.[a-z0-9.-]+)?/` + regexp.QuoteMeta(d.name) + ` `)
				if !applied.MatchString(out) {
					t.Errorf("%s: kubectl did not apply %s/%s:\n%s", p, d.kind, d.name, out)
				}
			}
		}
	})

	t.Run("pod security restricted", func(t *testing.T) {
		dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		for _, p := range deployManifests {
			pod := podOf(manifests[p].statefulSet(t))
			if _, err := cs.CoreV1().Pods(deployNS).Create(ctx, pod, dryRun); err != nil {
				t.Errorf("%s: the StatefulSet's pod is refused in a namespace enforcing restricted: %v", p, err)
			}
		}
		// The control: the apiserver enforces restricted on that namespace, so a pod that meets baseline but not
		// restricted (it may escalate privileges) is refused.
		pod := podOf(def.statefulSet(t))
		yes := true
		pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes
		if _, err := cs.CoreV1().Pods(deployNS).Create(ctx, pod, dryRun); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
			t.Fatalf("a pod allowing privilege escalation in namespace %s: %v, want refused by PodSecurity", deployNS, err)
		}
		// And the same in the StatefulSet's template draws a warning, which the dry-runs above would have failed on.
		sts := def.statefulSet(t)
		sts.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes
		b, err := yaml.Marshal(sts)
		if err != nil {
			t.Fatal(err)
		}
		file := writeDocs(t, "escalating.yaml", []manifestDoc{{raw: string(b)}})
		if _, stderr, err := kubectlRun(t, admin, "apply", "--dry-run=server", "-f", file); err != nil || !strings.Contains(strings.Join(kubectlWarnings.FindAllString(stderr, -1), "\n"), "would violate PodSecurity") {
			t.Fatalf("a StatefulSet whose pod may escalate: %v, stderr %q; want a Pod Security warning", err, stderr)
		}
	})

	// Callers of kiem's API: viewer holds get on graph.kiem.io (docs/auth.md), nobody holds nothing.
	const teamNS = "team"
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNS}}, metav1.CreateOptions{})
		return err
	})
	for _, name := range []string{"viewer", "nobody"} {
		mustCreate(t, func() error {
			_, err := cs.CoreV1().ServiceAccounts(teamNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		})
	}
	viewerRule := []rbacv1.PolicyRule{{APIGroups: []string{auth.VirtualGroup}, Resources: []string{auth.VirtualResource}, Verbs: []string{auth.VerbView}}}
	mustCreate(t, func() error {
		_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kiem-viewer"}, Rules: viewerRule}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "kiem-viewers"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kiem-viewer"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: teamNS, Name: "viewer"}},
		}, metav1.CreateOptions{})
		return err
	})
	// A Secret for --index-secrets to find.
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Secrets(teamNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-password"},
			StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{})
		return err
	})
	waitAllowed(t, cs, teamNS, "viewer", viewerRule, true)
	tokenFor := func(ns, name string, audiences ...string) string {
		t.Helper()
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: audiences},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for %s/%s: %v", ns, name, err)
		}
		return tr.Status.Token
	}
	// kiem's own identity: a token of the manifest's ServiceAccount, as the pod would mount it.
	kiemKubeconfig := writeTokenKubeconfig(t, cl, tokenFor(deployNS, deployName))
	applyRole := func(m *manifest) {
		t.Helper()
		kubectl(t, admin, "apply", "-f", writeDocs(t, "clusterrole.yaml", m.only("ClusterRole")))
		var role rbacv1.ClusterRole
		m.object(t, "ClusterRole", &role)
		waitAllowed(t, cs, deployNS, deployName, role.Rules, true)
	}
	const revisionQuery = `{ server { revision } }`
	served := func(t *testing.T, s *servedKiem, token string) int {
		t.Helper()
		code, body := post(t, s.url+"/graphql", token, revisionQuery)
		if code != 200 {
			return code
		}
		var r struct {
			Data struct{ Server struct{ Revision int } }
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.Data.Server.Revision == 0 {
			t.Fatalf("revision: %s %v", body, err)
		}
		return code
	}
	ready := func(t *testing.T, s *servedKiem) {
		t.Helper()
		waitFor(t, "kiem ready (/readyz)\n"+s.stderr.String(), func() bool { code, _ := get(s.url + "/readyz"); return code == 200 })
	}

	t.Run("default", func(t *testing.T) {
		applyRole(def)
		s := serveAsManifest(t, def.statefulSet(t), kiemKubeconfig)
		ready(t, s)
		viewer := tokenFor(teamNS, "viewer")
		if code := served(t, s, viewer); code != 200 {
			t.Errorf("a caller granted get on graph.kiem.io: %d, want 200", code)
		}
		if code := served(t, s, tokenFor(teamNS, "nobody")); code != 403 {
			t.Errorf("a caller without: %d, want 403", code)
		}
		if code := served(t, s, ""); code != 401 {
			t.Errorf("no token: %d, want 401", code)
		}
		// kiem indexed its own grants.
		code, body := post(t, s.url+"/graphql", viewer, `{ can(subject: {kind: SERVICE_ACCOUNT, namespace: "kiem", name: "kiem"}, action: {verb: "watch", resource: "clusterrolebindings", apiGroup: "rbac.authorization.k8s.io"}) { allowed } }`)
		if code != 200 || !strings.Contains(body, `"allowed":true`) {
			t.Errorf("kiem's own grant: %d %s", code, body)
		}
		if code := s.stop(); code != 0 {
			t.Errorf("kiem serve exited %d", code)
		}
		if logs := s.clientLogs(); strings.Contains(strings.ToLower(logs), "forbidden") {
			t.Errorf("kiem was refused something with the manifest's RBAC:\n%s", logs)
		}
	})

	t.Run("index secrets", func(t *testing.T) {
		m := manifests[manifestSecrets]
		applyRole(m)
		s := serveAsManifest(t, m.statefulSet(t), kiemKubeconfig)
		ready(t, s)
		viewer := tokenFor(teamNS, "viewer", "kiem")
		if code := served(t, s, viewer); code != 200 {
			t.Errorf("a caller granted get, token for the audience kiem: %d, want 200", code)
		}
		if code := served(t, s, tokenFor(teamNS, "viewer")); code != 401 {
			t.Errorf("a token for the apiserver's audience: %d, want 401", code)
		}
		if code := served(t, s, tokenFor(teamNS, "nobody", "kiem")); code != 403 {
			t.Errorf("a caller without get: %d, want 403", code)
		}
		code, metrics := getWithToken(t, s.url+"/metrics", viewer)
		if code != 200 || !regexp.MustCompile(`(?m)^kiem_indexer_events_total\{kind="Secret",type="add"\} [1-9]`).MatchString(metrics) {
			t.Errorf("no Secret indexed: /metrics %d\n%s", code, metrics)
		}
		if code := s.stop(); code != 0 {
			t.Errorf("kiem serve exited %d", code)
		}
		if logs := s.clientLogs(); strings.Contains(strings.ToLower(logs), "forbidden") {
			t.Errorf("kiem was refused something with the manifest's RBAC:\n%s", logs)
		}
	})

	// Last, since the refused informers may still log while the next kiem starts.
	t.Run("control: secrets without the RBAC", func(t *testing.T) {
		kubectl(t, admin, "apply", "-f", writeDocs(t, "clusterrole.yaml", def.only("ClusterRole")))
		waitAllowed(t, cs, deployNS, deployName, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}}}, false)
		s := serveAsManifest(t, def.statefulSet(t), kiemKubeconfig, "--index-secrets")
		waitFor(t, "kiem logs a forbidden list of secrets", func() bool {
			return strings.Contains(s.clientLogs(), "forbidden")
		})
		if code, _ := get(s.url + "/readyz"); code == 200 {
			t.Error("kiem is ready although it cannot list secrets")
		}
		s.stop()
	})
}
