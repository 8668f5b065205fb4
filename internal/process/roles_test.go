package process

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/causewaydb/causeway/api/causeway/v1" // registers the services' descriptors
	"github.com/causewaydb/causeway/internal/pki"
)

// TestEveryMethodHasARule walks every service Causeway defines: a method
// without a rule would be reachable by admins only by accident, and one
// added later must be given a rule on purpose.
func TestEveryMethodHasARule(t *testing.T) {
	methods := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("causeway.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				path := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				methods++
				if _, ok := rules[path]; !ok {
					t.Errorf("%s has no rule in rules (roles.go)", path)
				}
			}
		}
		return true
	})
	if methods < 20 {
		t.Fatalf("found %d methods; the descriptors were not registered", methods)
	}
	for path := range rules {
		if _, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(path[1:len(path)-len(lastSegment(path))-1] + "." + lastSegment(path))); err != nil {
			t.Errorf("rule for %s, which no service defines", path)
		}
	}
}

func lastSegment(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[i+1:]
		}
	}
	return path
}

// TestRoles: what each role may do, as the README's table says.
func TestRoles(t *testing.T) {
	for _, c := range []struct {
		path string
		role pki.Role
		want bool
	}{
		{"/causeway.v1.KVService/Get", pki.RoleReadOnly, true},
		{"/causeway.v1.KVService/Put", pki.RoleReadOnly, false},
		{"/causeway.v1.KVService/Put", pki.RoleReadWrite, true},
		{"/causeway.v1.LinearService/Claim", pki.RoleReadOnly, false},
		{"/causeway.v1.LinearService/Progress", pki.RoleAdmin, false},
		{"/causeway.v1.LinearService/Progress", pki.RoleNode, true},
		{"/causeway.v1.LinearService/ApproveVoter", pki.RoleAdmin, true},
		{"/causeway.v1.LinearService/ApproveVoter", pki.RoleNode, false},
		{"/causeway.v1.LinearService/ApproveVoter", pki.RoleReadWrite, false},
		{"/causeway.v1.AdminService/RemoveRegion", pki.RoleReadWrite, false},
		{"/causeway.v1.AdminService/RemoveRegion", pki.RoleNode, false},
		{"/causeway.v1.AdminService/RemoveRegion", pki.RoleAdmin, true},
		{"/causeway.v1.ReplicationService/Replicate", pki.RoleAdmin, false},
		{"/causeway.v1.ReplicationService/Replicate", pki.RoleNode, true},
		{"/debug/pprof/profile", pki.RoleReadWrite, false},
		{"/debug/pprof/profile", pki.RoleAdmin, true},
	} {
		if got := allowed(c.path, c.role); got != c.want {
			t.Errorf("allowed(%s, %s) = %v, want %v", c.path, c.role, got, c.want)
		}
	}
}
