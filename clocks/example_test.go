package clocks_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/causewaydb/causeway/clocks"
)

func ExampleClock() {
	// A physical clock the example controls; production passes time.Now.
	now := time.UnixMilli(1732349923123)
	c := clocks.NewClock("us-east", func() time.Time { return now }, 500*time.Millisecond)

	fmt.Println(c.Now())
	fmt.Println(c.Now()) // physical time has not moved: the logical counter does

	// A write from a region whose clock runs 200 ms ahead.
	if err := c.Observe(clocks.Timestamp{WallMs: 1732349923323, Logical: 0, Region: "eu-west"}); err != nil {
		fmt.Println(err)
	}
	fmt.Println(c.Now()) // orders after the observed write

	// A region whose clock runs 2 s ahead is refused.
	err := c.Observe(clocks.Timestamp{WallMs: 1732349925123, Region: "ap-south"})
	fmt.Println(errors.Is(err, clocks.ErrClockOffset))
	// Output:
	// 1732349923123.0@us-east
	// 1732349923123.1@us-east
	// 1732349923323.1@us-east
	// true
}

func ExampleVector_Compare() {
	alice := clocks.Vector{"us-east": 3, "eu-west": 1}
	bob := clocks.Vector{"us-east": 2, "eu-west": 2}
	fmt.Println(alice.Compare(bob))
	fmt.Println(alice.Merge(bob))
	fmt.Println(alice.Compare(alice.Merge(bob)))
	// Output:
	// concurrent
	// {eu-west:2 us-east:3}
	// before
}

func ExampleVector_Missing() {
	applied := clocks.Vector{"us-east": 40, "eu-west": 7}
	token := clocks.Vector{"us-east": 38, "eu-west": 9, "ap-south": 2}
	for _, gap := range applied.Missing(token) {
		fmt.Printf("waiting for %s: have %d, need %d\n", gap.Region, gap.Have, gap.Need)
	}
	// Output:
	// waiting for ap-south: have 0, need 2
	// waiting for eu-west: have 7, need 9
}

func ExampleDecodeToken() {
	cluster := uuid.MustParse("6f1c2a0e-3b7d-4c59-9a1e-2d8f5b6c7e90")
	issued := clocks.Token{
		Cluster: cluster,
		Vector:  clocks.Vector{"us-east": 12, "eu-west": 3},
		Seen:    clocks.Timestamp{WallMs: 1732349923123, Logical: 4, Region: "us-east"},
	}
	s := issued.Encode()
	fmt.Println(s)

	got, err := clocks.DecodeToken(s, cluster)
	fmt.Println(got.Vector, got.Seen, err)

	// Cut off while being copied.
	_, err = clocks.DecodeToken(s[:len(s)-2], cluster)
	fmt.Println(err)
	// Output:
	// AW8cKg47fUxZmh4tj1tsfpCznujAtTIEB3VzLWVhc3QCB2V1LXdlc3QDB3VzLWVhc3QMCMtHtQ
	// {eu-west:3 us-east:12} 1732349923123.4@us-east <nil>
	// invalid causal token: checksum mismatch: token was altered or truncated; send it exactly as it was returned
}
