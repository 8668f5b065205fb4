package campaign_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/causewaydb/causeway/internal/campaign"
)

// lockWorkload stands for a workload of some tier (LinearWorkload is the
// linear tier's real one): it would acquire locks through the tier's
// service (env.URL and env.HTTP give its address and client); here it
// records two acquisitions as the service might answer them.
type lockWorkload struct{}

func (lockWorkload) Name() string { return "locks" }
func (lockWorkload) Tier() string { return campaign.TierLinear }

// lockResult is what the workload records in Event.Extra.
type lockResult struct {
	Lock  string `json:"lock"`
	Fence uint64 `json:"fence"`
}

func (lockWorkload) Run(ctx context.Context, env *campaign.Env) error {
	for i, fence := range []uint64{7, 5} { // a broken service: the fence went backwards
		op := env.Recorder.Invoke(campaign.Event{Tier: campaign.TierLinear, Workload: "locks", Client: fmt.Sprint("c", i), Session: fmt.Sprint("c", i), Index: 1, Region: env.Regions[i], F: "lock"})
		extra, _ := json.Marshal(lockResult{Lock: "l", Fence: fence})
		env.Recorder.Complete(op, campaign.EventOK, campaign.Event{Extra: extra})
	}
	return nil
}

// fenceChecker stands for a checker of that tier (FencingChecker is the
// linear tier's real one): fencing tokens of one lock must increase in the
// order the acquisitions completed.
type fenceChecker struct{}

func (fenceChecker) Name() string    { return "fencing" }
func (fenceChecker) Tier() string    { return campaign.TierLinear }
func (fenceChecker) Promise() string { return "fencing tokens strictly increase" }

func (c fenceChecker) Check(h *campaign.History) campaign.Findings {
	var f campaign.Findings
	last := map[string]uint64{}
	for _, e := range h.Of(campaign.EventOK) {
		if e.Tier != campaign.TierLinear || e.F != "lock" {
			continue
		}
		var r lockResult
		if err := json.Unmarshal(e.Extra, &r); err != nil {
			f.Anomalies = append(f.Anomalies, campaign.Anomaly{Checker: c.Name(), Kind: "malformed", Op: e.Op, Detail: err.Error()})
			continue
		}
		if r.Fence <= last[r.Lock] {
			f.Anomalies = append(f.Anomalies, campaign.Anomaly{Checker: c.Name(), Kind: "fence-regressed", Op: e.Op, Key: r.Lock,
				Detail: fmt.Sprintf("fence %d after %d", r.Fence, last[r.Lock])})
		}
		last[r.Lock] = max(last[r.Lock], r.Fence)
	}
	return f
}

// A workload and a checker of another tier plug into a campaign through
// Config.Workloads and Config.Checkers; here they run on a recorder alone.
func Example_otherTier() {
	rec := campaign.NewRecorder(nil)
	env := &campaign.Env{Regions: []string{"us-east", "eu-west"}, Recorder: rec}
	_ = lockWorkload{}.Run(context.Background(), env)
	for _, r := range campaign.RunCheckers(rec.History(), []campaign.Checker{fenceChecker{}}) {
		for _, a := range r.Findings.Anomalies {
			fmt.Println(a)
		}
	}
	// Output:
	// fencing/fence-regressed op 2 key "l": fence 5 after 7
}
