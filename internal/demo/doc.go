// Package demo is `causeway demo`: a local multi-region cluster of real
// `causeway serve` processes with fault injection on, a live dashboard
// embedded in the binary, and scripted scenarios that replay a scene and
// check what it should show.
//
// # What it guarantees
//
//   - One engine. Every control (cut, heal, delay a link; isolate a region,
//     split the cluster, heal all; kill -9, restart, pause, resume a region;
//     skew its clock) and every client operation (put, get, delete, claim,
//     lookup) is an Action run by Demo.Do. The dashboard, the scenario
//     runner and `causeway demo do` only build Actions and show results;
//     none of them holds logic of its own. Each Action has one text form
//     (Action.String, ParseAction), which is also a scenario step, so what a
//     person did in the dashboard can be saved as a scenario and replayed.
//   - One source of truth. The dashboard shows, per region, the response of
//     AdminService/Status — the message `causeway status --json` prints —
//     plus the supervisor's process state; it derives nothing the status
//     does not say, except timings it measures itself (how long a region
//     has been behind, how long a demo write took to become visible), which
//     are labelled as such.
//   - Faults survive restarts. The demo remembers which link directions are
//     cut and which delays were changed, and sets them again on a region it
//     restarts, so a restarted process does not silently heal a partition.
//   - Live within half a second. Each region is polled on its own every
//     200ms (a paused or killed region is not polled, so it cannot delay the
//     others), and the state is pushed to every page by server-sent events
//     when it changes.
//   - Loopback only. The dashboard and its control endpoints listen only on
//     a loopback address (Serve refuses any other), and exist only in demo
//     mode: plain `causeway serve` exposes nothing new.
//   - A checkable record. Every client operation is recorded in the history
//     format of internal/campaign (`causeway verify --check` reads it), and
//     so are the periods when a fault was active (as nemesis events). Report
//     runs the same checkers `causeway verify` runs and plots every
//     operation's latency over time with the fault periods shaded. Each run
//     of a scenario gets sessions of its own in the history, so a replay
//     never looks like a session that forgot its past.
//   - Scenarios are checked, not only played: a step's expectation (=> ok,
//     => value V, => unavailable "text", ...) that does not hold is a
//     failure naming the file and line, and the run goes on so the report
//     lists every failure.
//   - Bounded. The event timeline keeps the last 200 events, the recording
//     the last 1000 actions, the visibility tracker the last 256 writes,
//     each page's event stream buffers 8 states (a slow page skips states,
//     never blocks the demo), and at most 64 pages may listen at once.
package demo
