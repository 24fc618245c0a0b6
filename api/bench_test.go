package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// Benchmarks of the API's hot paths over loopback HTTP with the real SQLite
// store: command intake will call the same create path, and join links are
// what every click on a card costs.

func BenchmarkCreateCall(b *testing.B) {
	g := newGateway(b, gatewayOptions{guestJoin: true})
	client := &http.Client{}
	b.ResetTimer()
	for i := range b.N {
		body := []byte(fmt.Sprintf(`{"id":"bench-%d","title":"Standup"}`, i))
		req, _ := http.NewRequest(http.MethodPost, g.url+"/v1/calls", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

func BenchmarkTokenAndJoin(b *testing.B) {
	g := newGateway(b, gatewayOptions{guestJoin: true})
	g.post("/v1/calls", bearer(apiKey), map[string]any{"id": "bench", "provider": "selfhosted"})
	b.ResetTimer()
	for range b.N {
		res := g.post("/v1/calls/bench/token", bearer(apiKey), map[string]any{"user_id": "ada", "name": "Ada"})
		if res.status != http.StatusOK {
			b.Fatalf("token: %d %s", res.status, res.body)
		}
		if res := g.get("/join/bench", ""); res.status != http.StatusOK {
			b.Fatalf("join: %d", res.status)
		}
	}
}
