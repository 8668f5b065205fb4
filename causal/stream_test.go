package causal

import (
	"errors"
	"testing"

	"github.com/causewaydb/causeway/clocks"
)

func frame(origin string, seq uint64) *Write {
	return &Write{Timestamp: clocks.Timestamp{WallMs: seq, Region: origin}, Seq: seq, Vector: clocks.Vector{origin: seq}}
}

func TestInboxRefusesWhatTheOriginCannotHaveSent(t *testing.T) {
	in := NewInbox("us-east", 5)
	if err := in.Accept(frame("us-east", 5)); err != nil {
		t.Fatalf("the frame due: %v", err)
	}
	for _, c := range []struct {
		name string
		w    *Write
	}{
		{"another origin's write", frame("eu-west", 6)},
		{"a gap", frame("us-east", 7)},
		{"a repeat", frame("us-east", 5)},
	} {
		if err := in.Accept(c.w); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", c.name, err)
		}
	}
	if in.Next() != 6 {
		t.Errorf("refused frames moved the stream to %d", in.Next())
	}
	if err := in.CheckHead(4, true); !errors.Is(err, ErrBadFrame) {
		t.Errorf("a head behind the frames it came with: %v, want ErrBadFrame", err)
	}
	if err := in.CheckHead(4, false); err != nil {
		t.Errorf("a heartbeat's head is the latest report, not checked: %v", err)
	}
	if err := in.CheckHead(9, true); err != nil {
		t.Errorf("a head ahead of the frames: %v", err)
	}
}

func TestCaughtUpWallMsNeverBeyondOwnClock(t *testing.T) {
	if got := CaughtUpWallMs(5000, 3000); got != 3000 {
		t.Errorf("a peer's clock ahead: %d, want the local 3000", got)
	}
	if got := CaughtUpWallMs(2000, 3000); got != 2000 {
		t.Errorf("%d, want the peer's 2000", got)
	}
}

func TestCheckAck(t *testing.T) {
	if err := CheckAck("eu-west", 7, 7); err != nil {
		t.Errorf("acknowledging what was sent: %v", err)
	}
	if err := CheckAck("eu-west", 8, 7); !errors.Is(err, ErrBadAck) {
		t.Errorf("acknowledging beyond what was sent: %v, want ErrBadAck", err)
	}
}

func TestTruncationPoint(t *testing.T) {
	subs := []string{"eu-west", "ap-south"}
	for _, c := range []struct {
		name string
		head uint64
		acks map[string]uint64
		want uint64
	}{
		{"the slowest subscriber", 10, map[string]uint64{"eu-west": 9, "ap-south": 4}, 4},
		{"a subscriber that never acknowledged holds the log", 10, map[string]uint64{"eu-west": 9}, 0},
		{"never past the head", 3, map[string]uint64{"eu-west": 9, "ap-south": 8}, 3},
	} {
		if got := TruncationPoint(c.head, subs, c.acks); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if got := TruncationPoint(10, nil, nil); got != 10 {
		t.Errorf("no subscriber: %d, want the head", got)
	}
}

func TestResumeAt(t *testing.T) {
	for _, c := range []struct {
		name                 string
		head, logFirst, from uint64
		want                 Resume
	}{
		{"from the log", 10, 3, 5, ResumeSend},
		{"from the log's first write", 10, 3, 3, ResumeSend},
		{"from before the log", 10, 3, 2, ResumeSnapshot},
		{"an empty log behind the head", 10, 0, 4, ResumeSnapshot},
		{"everything sent", 10, 3, 11, ResumeWait},
		{"a subscriber ahead of the head", 10, 3, 12, ResumeLostWrites},
		{"a new region asks a new region", 0, 0, 1, ResumeWait},
	} {
		got, err := ResumeAt("us-east", c.head, c.logFirst, c.from)
		if got != c.want || (got == ResumeLostWrites) != errors.Is(err, ErrLostWrites) {
			t.Errorf("%s: %v (%v), want %v", c.name, got, err, c.want)
		}
	}
}

func TestSafeWallMs(t *testing.T) {
	if got := SafeWallMs(10_000, []uint64{8000, 9000}, 500); got != 7500 {
		t.Errorf("%d, want the least caught-up time less the margin, 7500", got)
	}
	if got := SafeWallMs(10_000, []uint64{0, 9000}, 500); got != 0 {
		t.Errorf("a peer never caught up: %d, want 0", got)
	}
	if got := SafeWallMs(10_000, nil, 500); got != 9500 {
		t.Errorf("no peer: %d, want the own clock less the margin", got)
	}
}

func TestCollectable(t *testing.T) {
	tomb := Version{Kind: KindTombstone, Timestamp: clocks.Timestamp{WallMs: 100, Region: "us-east"}, Seq: 4, Vector: clocks.Vector{"us-east": 4}}
	later := Version{Kind: KindValue, Timestamp: clocks.Timestamp{WallMs: 200, Region: "eu-west"}, Seq: 2, Vector: clocks.Vector{"eu-west": 2}}
	earlier := Version{Kind: KindValue, Timestamp: clocks.Timestamp{WallMs: 50, Region: "eu-west"}, Seq: 1, Vector: clocks.Vector{"eu-west": 1}}
	stable := clocks.Vector{"us-east": 4, "eu-west": 2}
	for _, c := range []struct {
		name     string
		siblings []Version
		stable   clocks.Vector
		safe     uint64
		want     bool
	}{
		{"alone, stable, old", []Version{tomb}, stable, 1000, true},
		{"not every region has it", []Version{tomb}, clocks.Vector{"us-east": 3}, 1000, false},
		{"a write concurrent with it may still arrive with an older time", []Version{tomb}, stable, 100, false},
		{"a losing sibling", []Version{later, tomb}, stable, 1000, true},
		{"the winner over a sibling", []Version{tomb, earlier}, stable, 1000, false},
		{"no longer a sibling", []Version{later}, stable, 1000, false},
	} {
		if got := Collectable(&tomb, c.siblings, c.stable, c.safe); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if Collectable(&later, []Version{later}, stable, 1000) {
		t.Error("a value is never collected")
	}
}
