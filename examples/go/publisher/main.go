// Command publisher is a Go service that publishes to app: channels.
//
//	publisher -demo                 an in-memory hub: subscribe to
//	                                app:scores, publish a few scores, read
//	                                them back, exit 0
//	publisher -store S -channel app:scores -n 10
//	                                publish n scores, one every 100 ms
//
// App channels carry whatever the publisher sends (one JSON value per
// event); the gateway lets API-key holders publish to them over REST, and
// any client subscribe.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"streamhub"
)

type score struct {
	Player string `json:"player"`
	Points int    `json:"points"`
}

func main() {
	demo := flag.Bool("demo", false, "run the self-contained demo")
	store := flag.String("store", "sqlite::memory:", "store of the hub")
	channel := flag.String("channel", "app:scores", "app: channel")
	n := flag.Int("n", 3, "events to publish")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	hub, err := streamhub.Open(streamhub.Config{
		"store": *store, "log-level": "warn",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	var sub *streamhub.Subscription
	if *demo {
		sub, err = hub.Subscribe(ctx, *channel, nil)
		if err != nil {
			log.Fatal(err)
		}
		defer sub.Close()
	}
	for i := 1; i <= *n; i++ {
		off, err := hub.PublishJSON(ctx, *channel, "app.score",
			score{Player: fmt.Sprintf("p%d", i), Points: i * 10})
		var e *streamhub.Error
		switch {
		case errors.Is(err, streamhub.ErrInvalid) && errors.As(err, &e):
			log.Fatalf("bad channel or data: %s", e.Message)
		case err != nil:
			log.Fatal(err)
		}
		fmt.Printf("published #%d\n", off)
		if !*demo {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !*demo {
		return
	}
	timeout := time.After(5 * time.Second)
	for got := 0; got < *n; got++ {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				log.Fatalf("subscription ended: %v", sub.Err())
			}
			fmt.Printf("received #%d %s %s\n", ev.Position.Offset, ev.Type,
				ev.Data)
		case <-timeout:
			log.Fatalf("received %d of %d events", got, *n)
		}
	}
}
