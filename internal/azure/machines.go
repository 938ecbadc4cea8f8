package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// ErrNotFound is returned when the VM or scale set of a machine does not exist (any more).
var ErrNotFound = errors.New("not found in Azure")

// Machines reads what Azure built for CAPZ machines — a VM and its managed disks, or a scale set's
// model — for the audit. It only reads (virtualMachines/read, disks/read, virtualMachineScaleSets/read)
// and it is never on the admission path.
type Machines struct {
	clients *Clients
}

// NewMachines returns a reader over clients.
func NewMachines(clients *Clients) *Machines { return &Machines{clients: clients} }

// ParseProviderID reads a CAPZ providerID (azure:///subscriptions/S/resourceGroups/RG/providers/
// Microsoft.Compute/virtualMachines/NAME, or a scale-set instance under virtualMachineScaleSets/NAME).
func ParseProviderID(providerID string) (*arm.ResourceID, error) {
	rest, ok := strings.CutPrefix(providerID, "azure://")
	if !ok {
		return nil, fmt.Errorf("providerID %q does not start with azure://", providerID)
	}
	id, err := arm.ParseResourceID(rest)
	if err != nil {
		return nil, fmt.Errorf("providerID %q: %w", providerID, err)
	}
	if id.SubscriptionID == "" || id.ResourceGroupName == "" {
		return nil, fmt.Errorf("providerID %q names no subscription and resource group", providerID)
	}
	return id, nil
}

// VM reads the virtual machine a providerID names, and each of its managed disks.
func (m *Machines) VM(ctx context.Context, providerID string) (*policy.ActualVM, error) {
	id, err := ParseProviderID(providerID)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(id.ResourceType.String(), "Microsoft.Compute/virtualMachines") {
		return nil, fmt.Errorf("providerID %q is a %s, not a virtual machine", providerID, id.ResourceType)
	}
	client, err := m.clients.virtualMachines(id.SubscriptionID)
	if err != nil {
		return nil, err
	}
	resp, err := client.Get(ctx, id.ResourceGroupName, id.Name, nil)
	if err != nil {
		return nil, notFound(err, "VM "+id.String())
	}
	out := &policy.ActualVM{Resource: id.String()}
	p := resp.Properties
	if p == nil || p.StorageProfile == nil {
		return out, nil
	}
	if p.SecurityProfile != nil && p.SecurityProfile.EncryptionAtHost != nil {
		out.EncryptionAtHost = *p.SecurityProfile.EncryptionAtHost
	}
	if os := p.StorageProfile.OSDisk; os != nil {
		d, err := m.disk(ctx, os.ManagedDisk, deref(os.Name), -1)
		if err != nil {
			return nil, err
		}
		out.OSDisk = d
	}
	for _, dd := range p.StorageProfile.DataDisks {
		if dd == nil || dd.Lun == nil {
			continue
		}
		d, err := m.disk(ctx, dd.ManagedDisk, deref(dd.Name), *dd.Lun)
		if err != nil {
			return nil, err
		}
		out.DataDisks = append(out.DataDisks, d)
	}
	return out, nil
}

// disk reads one managed disk of a VM: its encryption is the disk's own (encryption.type and
// diskEncryptionSetId, or the confidential disk's securityProfile), not the VM model's.
func (m *Machines) disk(ctx context.Context, md *armcompute.ManagedDiskParameters, name string, lun int32) (policy.ActualDisk, error) {
	out := policy.ActualDisk{Name: name, Lun: lun}
	if md == nil || md.ID == nil {
		// An ephemeral OS disk lives on the host: no managed disk, no customer key.
		out.EncryptionType = "Ephemeral"
		return out, nil
	}
	id, err := arm.ParseResourceID(*md.ID)
	if err != nil {
		return out, fmt.Errorf("managed disk %q: %w", *md.ID, err)
	}
	client, err := m.clients.disks(id.SubscriptionID)
	if err != nil {
		return out, err
	}
	resp, err := client.Get(ctx, id.ResourceGroupName, id.Name, nil)
	if err != nil {
		return out, fmt.Errorf("reading disk %s: %w", id, err)
	}
	out.Name = id.Name
	if p := resp.Properties; p != nil {
		if e := p.Encryption; e != nil {
			if e.Type != nil {
				out.EncryptionType = string(*e.Type)
			}
			out.DESID = deref(e.DiskEncryptionSetID)
		}
		if sp := p.SecurityProfile; sp != nil && sp.SecurityType != nil &&
			*sp.SecurityType == armcompute.DiskSecurityTypesConfidentialVMDiskEncryptedWithCustomerKey {
			out.EncryptionType = string(*sp.SecurityType)
			out.DESID = deref(sp.SecureVMDiskEncryptionSetID)
		}
	}
	return out, nil
}

// ScaleSet reads the model of a scale set: the encryption every new instance gets. The model's disks
// are not resources of their own, so only their Disk Encryption Set is known.
func (m *Machines) ScaleSet(ctx context.Context, subscription, resourceGroup, name string) (*policy.ActualVM, error) {
	client, err := m.clients.scaleSets(subscription)
	if err != nil {
		return nil, err
	}
	resp, err := client.Get(ctx, resourceGroup, name, nil)
	resource := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/%s", subscription, resourceGroup, name)
	if err != nil {
		return nil, notFound(err, "scale set "+resource)
	}
	out := &policy.ActualVM{Resource: resource, ScaleSet: true, OSDisk: policy.ActualDisk{Name: "(model)", Lun: -1}}
	p := resp.Properties
	if p == nil || p.VirtualMachineProfile == nil {
		return out, nil
	}
	vp := p.VirtualMachineProfile
	if vp.SecurityProfile != nil && vp.SecurityProfile.EncryptionAtHost != nil {
		out.EncryptionAtHost = *vp.SecurityProfile.EncryptionAtHost
	}
	if sp := vp.StorageProfile; sp != nil {
		if os := sp.OSDisk; os != nil {
			out.OSDisk.DESID = scaleSetDES(os.ManagedDisk)
			if os.ManagedDisk == nil {
				out.OSDisk.EncryptionType = "Ephemeral"
			}
		}
		for _, dd := range sp.DataDisks {
			if dd == nil || dd.Lun == nil {
				continue
			}
			out.DataDisks = append(out.DataDisks, policy.ActualDisk{Name: fmt.Sprintf("(model, lun %d)", *dd.Lun), Lun: *dd.Lun, DESID: scaleSetDES(dd.ManagedDisk)})
		}
	}
	return out, nil
}

func scaleSetDES(md *armcompute.VirtualMachineScaleSetManagedDiskParameters) string {
	if md == nil {
		return ""
	}
	if md.DiskEncryptionSet != nil && md.DiskEncryptionSet.ID != nil {
		return *md.DiskEncryptionSet.ID
	}
	if sp := md.SecurityProfile; sp != nil && sp.DiskEncryptionSet != nil && sp.DiskEncryptionSet.ID != nil {
		return *sp.DiskEncryptionSet.ID
	}
	return ""
}

func notFound(err error, what string) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
