package main

import (
	"strings"
	"testing"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
)

// TestStatusShowsVersionRefusal: `causeway status` says under the peer why
// its stream was refused for its protocol version, and nothing more when it
// was not.
func TestStatusShowsVersionRefusal(t *testing.T) {
	refusal := "region ap-south speaks replication protocol version 2 and region eu-west (this node) speaks version 1: no version in common"
	out := statusString(&v1.StatusResponse{Region: "eu-west", Peers: []*v1.PeerStatus{
		{Region: "us-east", Address: "10.0.0.1:7070", ProtocolVersion: 1},
		{Region: "ap-south", VersionRefused: refusal},
	}})
	if !strings.Contains(out, "\n          refused: "+refusal) {
		t.Errorf("status does not show the refusal under ap-south:\n%s", out)
	}
	if strings.Count(out, "refused:") != 1 {
		t.Errorf("status shows a refusal for a peer that was not refused:\n%s", out)
	}
}
