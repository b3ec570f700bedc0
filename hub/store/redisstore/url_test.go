package redisstore

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/switchboard-hub/switchboard/hub/store"
)

func TestClientFromURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string
	}{
		{"redis://127.0.0.1:6379/0", "*redis.Client"},
		{"rediss://127.0.0.1:6379/0", "*redis.Client"},
		{"redis+sentinel://127.0.0.1:26379?master_name=mymaster&addr=127.0.0.1:26380", "*redis.Client"},
		{"redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001", "*redis.ClusterClient"},
	} {
		c, err := newClient(Options{URL: tc.url, Partitions: 16})
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		got := ""
		switch cc := c.(type) {
		case *redis.Client:
			got = "*redis.Client"
			if cc.Options().PoolSize < 2*16+10 {
				t.Fatalf("%s: pool size %d leaves no room for blocked readers", tc.url, cc.Options().PoolSize)
			}
		case *redis.ClusterClient:
			got = "*redis.ClusterClient"
		}
		_ = c.Close()
		if got != tc.want {
			t.Fatalf("%s: client %T, want %s", tc.url, c, tc.want)
		}
	}
	for _, bad := range []string{"127.0.0.1:6379", "redis+ring://x:1", "redis://x:1/?nope=1"} {
		if _, err := newClient(Options{URL: bad}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("%s: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestTagEscapesBraces(t *testing.T) {
	for in, want := range map[string]string{"zalo:1": "zalo:1", "}x": "%7Dx", "a{b}": "a%7Bb%7D", "%7D": "%257D"} {
		if got := tag(in); got != want {
			t.Fatalf("tag(%q) = %q, want %q", in, got, want)
		}
	}
}
