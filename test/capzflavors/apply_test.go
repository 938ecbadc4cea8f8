package capzflavors

import (
	"context"
	"os"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

// refusedObjects is what a bare kube-apiserver with the CAPZ and CAPI CRDs refuses, per flavor
// (README.md, section b, says why). Every other flavor must apply completely.
var refusedObjects = map[string][]string{
	"aks-clusterclass":  {"AzureManagedControlPlaneTemplate"},
	"clusterclass-rke2": {"AzureClusterTemplate", "AzureMachineTemplate", "AzureMachineTemplate", "RKE2ControlPlaneTemplate", "RKE2ConfigTemplate"},
}

// TestFlavorsApplyToABareAPIServer creates every flavor, object by object in file order, on a real
// kube-apiserver with the CRDs from the module cache, as the e2e suite would. It needs the
// binaries `make envtest-assets` builds: KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)".
func TestFlavorsApplyToABareAPIServer(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip(`set KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)" to apply the flavors to a real kube-apiserver`)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, CRDInstallOptions: envtest.CRDInstallOptions{CRDs: flavorCRDs(t)}}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	flavors, err := Flavors()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flavors {
		t.Run(f.Name, func(t *testing.T) {
			vars := DefaultVars("eastus")
			vars[VarNamespace] = "flavor-" + f.Name
			if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: vars[VarNamespace]}}); err != nil {
				t.Fatal(err)
			}
			out, err := Render(f, vars)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Objects(out)
			if err != nil {
				t.Fatal(err)
			}
			var refused []string
			for _, o := range objs {
				if err := c.Create(ctx, o); err != nil {
					refused = append(refused, o.GetKind())
					t.Logf("refused %s %s: %v", o.GetKind(), o.GetName(), err)
				}
			}
			if want := refusedObjects[f.Name]; !slices.Equal(refused, want) {
				t.Errorf("refused %v, want %v", refused, want)
			}
		})
	}

	// CAPI's CRDs store v1beta2 and have no conversion webhook here: a v1beta1 KubeadmControlPlane
	// loses its infrastructure reference on the way to etcd (README.md, section b).
	kcp := &unstructured.Unstructured{}
	kcp.SetAPIVersion("controlplane.cluster.x-k8s.io/v1beta1")
	kcp.SetKind("KubeadmControlPlane")
	if err := c.Get(ctx, client.ObjectKey{Namespace: "flavor-default", Name: "capz-eastus-control-plane"}, kcp); err != nil {
		t.Fatal(err)
	}
	if mt, _, _ := unstructured.NestedMap(kcp.Object, "spec", "machineTemplate"); len(mt) != 0 {
		t.Errorf("the v1beta1 KCP kept spec.machineTemplate %v: conversion is no longer lossy here, update README.md", mt)
	}
}

// flavorCRDs reads the CAPZ CRDs and CAPI's core, kubeadm bootstrap and kubeadm control plane
// CRDs from the module cache, at the versions go.mod selects, as they are (no conversion
// accommodation: this test shows what a bare apiserver does with them).
func flavorCRDs(t *testing.T) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crds, err := testsupport.FlavorCRDs("")
	if err != nil {
		t.Fatal(err)
	}
	return crds
}
