package demo

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"

	"github.com/causewaydb/causeway/internal/campaign"
)

// TestLatencySVG checks the plot is well-formed SVG with one shaded fault
// period, a dot per acknowledged operation and a cross per refused one.
func TestLatencySVG(t *testing.T) {
	var buf bytes.Buffer
	rec := campaign.NewRecorder(io.Discard)
	op := rec.Invoke(campaign.Event{Tier: campaign.TierCausal, Session: "a", Index: 1, Region: "us-east", F: campaign.FPut, Key: "k", Value: "v"})
	rec.Complete(op, campaign.EventOK, campaign.Event{Version: &campaign.Version{Origin: "us-east", Seq: 1}})
	fault := &campaign.Fault{ID: 1, Kind: campaign.FaultPartition, Region: "ap-southeast"}
	rec.Record(campaign.Event{Type: campaign.EventNemesis, Fault: fault, Phase: campaign.PhaseStart, Detail: "isolate ap-southeast"})
	op = rec.Invoke(campaign.Event{Tier: campaign.TierLinear, Session: "b", Index: 1, Region: "ap-southeast", F: campaign.FClaim, Key: "users/neo"})
	rec.Complete(op, campaign.EventFail, campaign.Event{Code: "unavailable", Error: "no quorum"})
	op = rec.Invoke(campaign.Event{Tier: campaign.TierLinear, Session: "c", Index: 1, Region: "us-east", F: campaign.FClaim, Key: "users/neo"})
	rec.Complete(op, campaign.EventOK, campaign.Event{})
	rec.Record(campaign.Event{Type: campaign.EventNemesis, Fault: fault, Phase: campaign.PhaseHeal, Detail: "heal-all"})
	if err := writeLatencySVG(&buf, rec.History()); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, buf.String())
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Local == "class" {
					counts[se.Name.Local+"."+a.Value]++
				}
			}
		}
	}
	want := map[string]int{"rect.fault": 1, "circle.op": 2, "path.op fail": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
}
