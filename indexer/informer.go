package indexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kiem-io/kiem/graph"
)

// liveKinds are the kinds the live indexer watches, in the order changes are listed within the initial revision.
var liveKinds = [...]graph.Kind{
	graph.KindNamespace, graph.KindClusterRole, graph.KindClusterRoleBinding, graph.KindServiceAccount,
	graph.KindRole, graph.KindRoleBinding, graph.KindPod, graph.KindNode,
}

// key names one object of the cluster. Deletions are keyed by namespace and name only, because a tombstone's
// object may be stale or missing (TECH-NOTES §3, pitfall 3).
type key struct {
	kind            graph.Kind
	namespace, name string
}

// ref is the graph reference of the object the key names.
func (k key) ref() graph.ObjectRef {
	return graph.ObjectRef{Kind: k.kind, Namespace: k.namespace, Name: k.name}
}

// storeKey is the key of the object in its informer's cache (cache.MetaNamespaceKeyFunc's form).
func (k key) storeKey() string {
	if k.namespace == "" {
		return k.name
	}
	return k.namespace + "/" + k.name
}

// informer is the shared informer of one kind, with the counters of the events it delivered.
type informer struct {
	kind        graph.Kind
	inf         cache.SharedIndexInformer
	added       atomic.Uint64
	updated     atomic.Uint64
	deleted     atomic.Uint64
	watchErrors atomic.Uint64
}

// newInformers requests the shared informers of every kind in liveKinds from a new factory. Nothing runs until
// the factory is started.
func newInformers(client kubernetes.Interface, secrets bool) (informers.SharedInformerFactory, map[graph.Kind]*informer) {
	// Resync stays off: it only replays the local cache (TECH-NOTES §3), which the graph already mirrors.
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(slim))
	infs := map[graph.Kind]cache.SharedIndexInformer{
		graph.KindNamespace:          f.Core().V1().Namespaces().Informer(),
		graph.KindServiceAccount:     f.Core().V1().ServiceAccounts().Informer(),
		graph.KindPod:                f.Core().V1().Pods().Informer(),
		graph.KindNode:               f.Core().V1().Nodes().Informer(),
		graph.KindRole:               f.Rbac().V1().Roles().Informer(),
		graph.KindClusterRole:        f.Rbac().V1().ClusterRoles().Informer(),
		graph.KindRoleBinding:        f.Rbac().V1().RoleBindings().Informer(),
		graph.KindClusterRoleBinding: f.Rbac().V1().ClusterRoleBindings().Informer(),
	}
	if secrets {
		infs[graph.KindSecret] = f.Core().V1().Secrets().Informer()
	}
	out := make(map[graph.Kind]*informer, len(infs))
	for k, inf := range infs {
		out[k] = &informer{kind: k, inf: inf}
	}
	return f, out
}

// slim is the factory's transform: it runs on every object before the informer caches it, so whatever it drops
// never costs memory. It drops managedFields everywhere, reduces Pods to what graph.Pod keeps (metadata minus
// annotations, the ServiceAccount, automount and node name) and Nodes to their metadata (status, with the image
// list, is most of a Node).
//
// client-go may hand it an object it has already transformed, so it is idempotent; it may modify its argument
// in place (it owns it until it returns), but builds new Pods and Nodes rather than clearing fields one by one,
// so that fields added to the API later are dropped too. Tombstones are passed through.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &corev1.Pod{
			TypeMeta: o.TypeMeta,
			ObjectMeta: metav1.ObjectMeta{
				Name:              o.Name,
				Namespace:         o.Namespace,
				UID:               o.UID,
				ResourceVersion:   o.ResourceVersion,
				CreationTimestamp: o.CreationTimestamp,
				Labels:            o.Labels,
				OwnerReferences:   o.OwnerReferences,
			},
			Spec: corev1.PodSpec{
				ServiceAccountName:           o.Spec.ServiceAccountName,
				DeprecatedServiceAccount:     o.Spec.DeprecatedServiceAccount,
				AutomountServiceAccountToken: o.Spec.AutomountServiceAccountToken,
				NodeName:                     o.Spec.NodeName,
			},
		}, nil
	case *corev1.Node:
		n := &corev1.Node{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta}
		n.ManagedFields = nil
		return n, nil
	case *corev1.Secret:
		// Never keep secret data: not data or stringData, and no annotation but the ServiceAccount a token
		// belongs to (last-applied-configuration holds the data in clear).
		m := metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion,
			CreationTimestamp: o.CreationTimestamp, Labels: o.Labels}
		if sa, ok := o.Annotations[corev1.ServiceAccountNameKey]; ok {
			m.Annotations = map[string]string{corev1.ServiceAccountNameKey: sa}
		}
		return &corev1.Secret{TypeMeta: o.TypeMeta, ObjectMeta: m, Type: o.Type}, nil
	case cache.DeletedFinalStateUnknown:
		return obj, nil
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// handler returns the event handler of one kind. It counts the event and enqueues the object's key, nothing
// more: the workers read the current state from the cache, so several events for one object coalesce into one
// key. Two kinds of events are not enqueued, because they cannot change the graph:
//   - adds of the initial list: the reconciling revision computed from the synced caches covers them, and
//     enqueueing 100k pods only for each to be found unchanged would delay the first real event by seconds;
//   - updates whose old and new objects convert to the same graph object: a pod's status, a node's heartbeat,
//     a relist's unchanged objects. Every update that does change what kiem keeps is enqueued, so dropping the
//     others loses nothing; it keeps pod churn out of the queue and off the single batcher.
func (l *Live) handler(inf *informer) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, isInInitialList bool) {
			inf.added.Add(1)
			if !isInInitialList {
				l.enqueue(inf.kind, obj)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			inf.updated.Add(1)
			if sameContent(oldObj, newObj) {
				l.stats.skipped.Add(1)
				return
			}
			l.enqueue(inf.kind, newObj)
		},
		DeleteFunc: func(obj any) {
			inf.deleted.Add(1)
			l.enqueue(inf.kind, obj)
		},
	}
}

// watchErrorHandler logs the list and watch failures of one kind. client-go only logs them through klog, and
// a list that keeps failing (kiem lacks list/watch permission on nodes, say) otherwise shows as an indexer that
// never becomes ready. Expired watches and closed connections are routine: the reflector relists or rewatches.
func (l *Live) watchErrorHandler(inf *informer) cache.WatchErrorHandlerWithContext {
	return func(ctx context.Context, _ *cache.Reflector, err error) {
		switch {
		case ctx.Err() != nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
			apierrors.IsResourceExpired(err), apierrors.IsGone(err):
			l.log.Debug("watch closed", "kind", inf.kind, "err", err)
		default:
			inf.watchErrors.Add(1)
			l.log.Warn("list/watch failed; retrying with backoff", "kind", inf.kind, "err", err)
		}
	}
}

// sameContent reports whether two cached objects convert to the same graph object.
func sameContent(a, b any) bool {
	ga, errA := convertLive(a)
	gb, errB := convertLive(b)
	return errA == nil && errB == nil && sameObject(ga, gb)
}

// enqueue adds the key of obj, an object of kind or a tombstone, to the work queue.
func (l *Live) enqueue(kind graph.Kind, obj any) {
	k, err := objectKey(kind, obj)
	if err != nil {
		// Only an object that is not an API object gets here: a bug, not an event to retry.
		l.log.Error("cannot key informer event", "kind", kind, "err", err)
		return
	}
	l.queue.Add(k)
}

// objectKey returns the key of obj. A tombstone (cache.DeletedFinalStateUnknown: the watch missed the delete and
// a relist found the object gone) is keyed by its Key, whatever its possibly stale or nil Obj holds.
func objectKey(kind graph.Kind, obj any) (key, error) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		ns, name, err := cache.SplitMetaNamespaceKey(t.Key)
		if err != nil {
			return key{}, fmt.Errorf("tombstone key %q: %w", t.Key, err)
		}
		return key{kind: kind, namespace: ns, name: name}, nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return key{}, fmt.Errorf("%T: %w", obj, err)
	}
	return key{kind: kind, namespace: m.GetNamespace(), name: m.GetName()}, nil
}

// lookup reads the object k names from its informer's cache and converts it; nil means the cluster no longer has
// it.
func (l *Live) lookup(k key) (graph.Object, error) {
	obj, exists, err := l.informers[k.kind].inf.GetIndexer().GetByKey(k.storeKey())
	if err != nil || !exists {
		return nil, err
	}
	return convertLive(obj)
}
