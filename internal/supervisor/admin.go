package supervisor

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// HTTPClient is the client the supervisor talks to the regions' admin API
// with.
func (s *Supervisor) HTTPClient() *http.Client { return s.cfg.HTTP }

func (s *Supervisor) admin(name string) (causewayv1connect.AdminServiceClient, error) {
	r, ok := s.Region(name)
	if !ok {
		return nil, fmt.Errorf("no region %q", name)
	}
	return causewayv1connect.NewAdminServiceClient(s.cfg.HTTP, r.URL()), nil
}

// Status asks one region for its status (within 3s).
func (s *Supervisor) Status(ctx context.Context, name string) (*v1.StatusResponse, error) {
	admin, err := s.admin(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := admin.Status(ctx, connect.NewRequest(&v1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// AwaitServing waits until the causal tier of every named region serves
// clients, for at most limit in all.
func (s *Supervisor) AwaitServing(ctx context.Context, limit time.Duration, names ...string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for _, name := range names {
		r, ok := s.Region(name)
		if !ok {
			return fmt.Errorf("no region %q", name)
		}
		if err := AwaitCausalServing(ctx, s.cfg.HTTP, r.URL(), limit); err != nil {
			return fmt.Errorf("region %s %w", name, err)
		}
	}
	return nil
}

// Wipe loses a region's disk the way an operator meets it: it drains the
// region (no new writes; AdminService/SetDrain), waits up to limit until
// every other region holds every write the region issued, so that the wipe
// loses none, then kills it and deletes its data directory. Starting it
// again with --join brings it back; it rejoins before it serves.
func (s *Supervisor) Wipe(ctx context.Context, name string, limit time.Duration) error {
	if err := s.SetDrain(ctx, name, true); err != nil {
		return err
	}
	others := slicesWithout(s.Regions(), name)
	err := Poll(ctx, limit, func(ctx context.Context) (bool, string) {
		st, err := s.Status(ctx, name)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", name, err)
		}
		head := st.GetVector()[name]
		var behind []string
		for _, other := range others {
			ost, err := s.Status(ctx, other)
			if err != nil {
				behind = append(behind, fmt.Sprintf("%s: %v", other, err))
			} else if got := ost.GetVector()[name]; got < head {
				behind = append(behind, fmt.Sprintf("%s holds %d of %s's %d writes", other, got, name, head))
			}
		}
		return len(behind) == 0, strings.Join(behind, "; ")
	})
	if err != nil {
		_ = s.SetDrain(context.WithoutCancel(ctx), name, false)
		return fmt.Errorf("the other regions did not catch up with drained %s, so wiping it would lose writes: %w", name, err)
	}
	r, err := s.region(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.kill(); err != nil {
		return err
	}
	if err := os.RemoveAll(r.spec.DataDir); err != nil {
		return fmt.Errorf("wipe %s: %w", name, err)
	}
	return nil
}

// SetDrain turns a region's drain on or off (within 5s).
func (s *Supervisor) SetDrain(ctx context.Context, name string, drain bool) error {
	admin, err := s.admin(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := admin.SetDrain(ctx, connect.NewRequest(&v1.SetDrainRequest{Drain: drain})); err != nil {
		return fmt.Errorf("drain %s: %w", name, err)
	}
	return nil
}

// Poll calls cond every 50ms until it holds or limit passes; the error
// then carries cond's last description of what is missing.
func Poll(ctx context.Context, limit time.Duration, cond func(context.Context) (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond(ctx)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %s", limit, why)
		case <-tick.C:
		}
	}
}

func slicesWithout(names []string, name string) []string {
	var out []string
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}
