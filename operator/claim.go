package operator

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

// nameConflict is an object the operator would apply that exists and
// belongs to someone else: the user's own Service, an Endpoint's upstream.
// Applying it (which forces field ownership) would silently take it over.
type nameConflict struct {
	kind, name string
	owner      owner
	why        string
}

func (c *nameConflict) Error() string {
	return fmt.Sprintf("%s %s exists and does not belong to %s %s (%s): remove it or rename the %s",
		c.kind, c.name, c.owner.kind, c.owner.name, c.why, c.owner.kind)
}

// owner is who claims an object: an API or an Endpoint, by kind and name,
// and the label its objects carry with its name.
type owner struct {
	kind, name, label string
}

// claimer checks, before an apply, that the object is absent or the owner's.
type claimer struct {
	// cache holds the objects the operator labelled (and all ConfigMaps'
	// and Secrets' metadata); live is asked when the cache has no such
	// object, since an object someone else made carries no label of ours.
	cache, live client.Reader
}

// claim returns a *nameConflict when an object of gvk named key exists and
// is not o's. An object is o's when o's kind and name control it (the same
// name and another UID is the object o replaces, whose objects wait for the
// garbage collector), or when nothing controls it and it carries o's label
// (orphaned by a delete with --cascade=orphan).
func (c claimer) claim(ctx context.Context, gvk schema.GroupVersionKind, key types.NamespacedName, o owner) error {
	var obj client.Object
	if gvk.Group == appsv1.GroupName && gvk.Kind == "Deployment" {
		// The cache holds Deployments whole; asking for metadata only would
		// start a second informer.
		obj = &appsv1.Deployment{}
	} else {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		obj = m
	}
	err := c.cache.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		err = c.live.Get(ctx, key, obj)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get %s %s: %w", gvk.Kind, key.Name, err)
	}
	if ctl := metav1.GetControllerOfNoCopy(obj); ctl != nil {
		gv, _ := schema.ParseGroupVersion(ctl.APIVersion)
		if gv.Group == v1alpha1.GroupVersion.Group && ctl.Kind == o.kind && ctl.Name == o.name {
			return nil
		}
		return &nameConflict{kind: gvk.Kind, name: key.Name, owner: o, why: fmt.Sprintf("%s %s controls it", ctl.Kind, ctl.Name)}
	}
	if obj.GetLabels()[o.label] == o.name {
		return nil
	}
	return &nameConflict{kind: gvk.Kind, name: key.Name, owner: o, why: "the operator did not create it"}
}
