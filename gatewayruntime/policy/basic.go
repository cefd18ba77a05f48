package policy

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

const (
	// basicCacheTTL bounds how long a verified user:password pair skips bcrypt.
	// The cache belongs to one Binding generation, so a changed htpasswd file
	// empties it at once.
	basicCacheTTL  = 5 * time.Minute
	basicCacheSize = 16384
)

// basicScheme checks HTTP Basic credentials against bcrypt entries of an
// htpasswd file. bcrypt costs tens of milliseconds by design, so successful
// verifications are cached (by a digest of user and password, never the
// password itself), and at most GOMAXPROCS verifications run at once so that a
// password-guessing flood cannot take every CPU from the proxy.
type basicScheme struct {
	name  string
	realm string
	users map[string][]byte
	// dummy is compared for unknown users so that timing does not tell which
	// user names exist.
	dummy []byte
	slots chan struct{}

	// salt keys the cache digests, so that the cache (in memory only) is no
	// faster to attack than bcrypt itself.
	salt  [32]byte
	mu    sync.Mutex
	cache map[[sha256.Size]byte]time.Time
}

func newBasicScheme(env filter.Env, name, realm string, bb *bundle.BasicBinding) (*basicScheme, error) {
	data, err := readBindingFile(env, bb.HtpasswdFile)
	if err != nil {
		return nil, err
	}
	users, err := parseHtpasswd(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bb.HtpasswdFile, err)
	}
	if bb.Realm != "" {
		realm = bb.Realm
	}
	cost := bcrypt.DefaultCost
	for _, h := range users {
		if c, err := bcrypt.Cost(h); err == nil {
			cost = c
			break
		}
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("gatekiln-no-such-user"), cost)
	if err != nil {
		return nil, fmt.Errorf("basic %s: %w", name, err)
	}
	s := &basicScheme{
		name:  name,
		realm: realm,
		users: users,
		dummy: dummy,
		slots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		cache: map[[sha256.Size]byte]time.Time{},
	}
	if _, err := rand.Read(s.salt[:]); err != nil {
		return nil, fmt.Errorf("basic %s: %w", name, err)
	}
	return s, nil
}

func (s *basicScheme) digest(user, pass string) [sha256.Size]byte {
	m := hmac.New(sha256.New, s.salt[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// parseHtpasswd reads "user:hash" lines; only bcrypt hashes ($2a$, $2b$, $2y$)
// are accepted, because the others htpasswd can write (MD5-crypt, SHA-1,
// crypt) are too weak to hold.
func parseHtpasswd(data []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:bcrypt-hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil || !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("line %d (user %s): not a bcrypt hash (use htpasswd -B)", n, user)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("line %d: user %s appears twice", n, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read htpasswd: %w", err)
	}
	return users, nil
}

func (s *basicScheme) checksScopes() bool { return false }

func (s *basicScheme) challenge(*authError) string {
	return fmt.Sprintf(`Basic realm=%q, charset="UTF-8"`, s.realm)
}

func (s *basicScheme) authenticate(r *http.Request) (*principal, *authError) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil, missing("send a user name and password (HTTP Basic)")
	}
	sum := s.digest(user, pass)
	now := time.Now()
	if s.cached(sum, now) {
		return &principal{identity: filter.Identity{Scheme: s.name, Subject: user}}, nil
	}
	hash, known := s.users[user]
	if !known {
		hash = s.dummy
	}
	select {
	case s.slots <- struct{}{}:
	case <-r.Context().Done():
		return nil, unavailable("cancelled", "the request was cancelled")
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	<-s.slots
	if err != nil || !known {
		return nil, invalid("bad_password", "the user name or password is wrong")
	}
	s.remember(sum, now)
	return &principal{identity: filter.Identity{Scheme: s.name, Subject: user}}, nil
}

func (s *basicScheme) cached(sum [sha256.Size]byte, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.cache[sum]
	return ok && now.Before(exp)
}

func (s *basicScheme) remember(sum [sha256.Size]byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= basicCacheSize {
		for k, exp := range s.cache {
			if !now.Before(exp) {
				delete(s.cache, k)
			}
		}
		for k := range s.cache {
			if len(s.cache) < basicCacheSize*9/10 {
				break
			}
			delete(s.cache, k)
		}
	}
	s.cache[sum] = now.Add(basicCacheTTL)
}
