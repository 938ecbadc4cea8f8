// Package flavorgen generates large multi-document inputs shaped like a CAPZ flavor — per cluster a
// Cluster, its AzureCluster, a MachineDeployment, the AzureMachineTemplate it references and a
// KubeadmConfigTemplate — with distinct names, as an io.Reader, so that tests and `make bench-check`
// can feed `check` any number of objects without a file in the repository.
package flavorgen

import (
	"bytes"
	"fmt"
	"io"
)

// ObjectsPerCluster is how many objects each cluster contributes.
const ObjectsPerCluster = 5

// Options shape the generated input.
type Options struct {
	// Clusters is how many clusters are generated (ObjectsPerCluster objects each).
	Clusters int
	// TemplateFirst puts each AzureMachineTemplate before its Cluster and MachineDeployment, so that
	// it cannot be resolved when read: a streaming check holds every one back.
	TemplateFirst bool
}

// Reader returns the input, generated as it is read.
func Reader(o Options) io.Reader { return &reader{opts: o} }

type reader struct {
	opts Options
	next int
	buf  bytes.Buffer
}

func (r *reader) Read(p []byte) (int, error) {
	for r.buf.Len() == 0 {
		if r.next >= r.opts.Clusters {
			return 0, io.EOF
		}
		writeCluster(&r.buf, r.next, r.opts.TemplateFirst)
		r.next++
	}
	return r.buf.Read(p)
}

// Regions cycle through the clusters.
var regions = []string{"eastus", "eastus2", "southcentralus", "westcentralus"}

func writeCluster(w *bytes.Buffer, i int, templateFirst bool) {
	name := fmt.Sprintf("capz-%06d", i)
	region := regions[i%len(regions)]
	cluster := fmt.Sprintf(`---
apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: %[1]s
  namespace: default
spec:
  clusterNetwork:
    pods:
      cidrBlocks:
      - 192.168.0.0/16
  controlPlaneRef:
    apiVersion: controlplane.cluster.x-k8s.io/v1beta1
    kind: KubeadmControlPlane
    name: %[1]s-control-plane
  infrastructureRef:
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
    kind: AzureCluster
    name: %[1]s
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureCluster
metadata:
  name: %[1]s
  namespace: default
spec:
  identityRef:
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
    kind: AzureClusterIdentity
    name: cluster-identity
  location: %[2]s
  networkSpec:
    vnet:
      name: %[1]s-vnet
  resourceGroup: %[1]s
  subscriptionID: 6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90
`, name, region)
	md := fmt.Sprintf(`---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata:
  name: %[1]s-md-0
  namespace: default
spec:
  clusterName: %[1]s
  replicas: 3
  selector:
    matchLabels: null
  template:
    spec:
      bootstrap:
        configRef:
          apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
          kind: KubeadmConfigTemplate
          name: %[1]s-md-0
      clusterName: %[1]s
      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
        kind: AzureMachineTemplate
        name: %[1]s-md-0
      version: v1.33.1
`, name)
	amt := fmt.Sprintf(`---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureMachineTemplate
metadata:
  name: %[1]s-md-0
  namespace: default
spec:
  template:
    spec:
      identity: UserAssigned
      osDisk:
        diskSizeGB: 128
        osType: Linux
      sshPublicKey: ""
      userAssignedIdentities:
      - providerID: /subscriptions/6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90/resourceGroups/%[1]s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cloud-provider-user-identity
      vmSize: Standard_D4s_v3
`, name)
	kct := fmt.Sprintf(`---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
kind: KubeadmConfigTemplate
metadata:
  name: %[1]s-md-0
  namespace: default
spec:
  template:
    spec:
      files:
      - contentFrom: {secret: {key: worker-node-azure.json, name: %[1]s-md-0-azure-json}}
        path: /etc/kubernetes/azure.json
      joinConfiguration:
        nodeRegistration:
          kubeletExtraArgs:
            cloud-provider: external
          name: '{{ ds.meta_data["local_hostname"] }}'
      preKubeadmCommands: []
`, name)
	if templateFirst {
		w.WriteString(amt + cluster + md + kct)
		return
	}
	w.WriteString(cluster + md + amt + kct)
}
