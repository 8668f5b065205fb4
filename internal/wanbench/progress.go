package wanbench

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress is the bar the user watches: what the benchmark does now and
// how long is left. Its unit is planned time (tenths of a second): each
// step has a budget (a measured row's phase, an estimate for a start), the
// bar advances with the wall clock within the current step's budget and
// jumps to the step's end when the next one begins, so "left" is the
// planned time of the steps not yet done plus what remains of this one.
type progress struct {
	bar  *progressbar.ProgressBar
	mu   sync.Mutex
	done time.Duration // planned time of the finished steps
	cur  time.Duration // budget of the current step
	at   time.Time     // when the current step began
	desc string
	plan time.Duration
	stop chan struct{}
	wg   sync.WaitGroup
}

const progressUnit = 100 * time.Millisecond

func newProgress(w io.Writer, plan time.Duration) *progress {
	p := &progress{plan: plan, stop: make(chan struct{})}
	if w == nil {
		return p
	}
	p.bar = progressbar.NewOptions64(int64(plan/progressUnit),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(250*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	p.wg.Go(p.tick)
	return p
}

// step starts the next step, with its planned duration.
func (p *progress) step(desc string, budget time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += p.cur
	p.cur, p.at, p.desc = budget, time.Now(), desc
	p.render()
}

func (p *progress) render() {
	if p.bar == nil {
		return
	}
	within := min(time.Since(p.at), p.cur)
	pos := min(p.done+within, p.plan)
	left := (p.plan - pos).Round(time.Second)
	p.bar.Describe(fmt.Sprintf("%-62s %7s left", p.desc, left))
	p.bar.Set64(int64(pos / progressUnit))
}

func (p *progress) tick() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.render()
			p.mu.Unlock()
		}
	}
}

func (p *progress) finish() {
	close(p.stop)
	p.wg.Wait()
	if p.bar != nil {
		p.bar.Describe("done")
		p.bar.Finish()
	}
}
