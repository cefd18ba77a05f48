package promote_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gatekiln/gatekiln/builder/promote"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
)

const sbomType = "application/vnd.example.sbom.v1+json"

// referrersAPI serves go-containerregistry's in-process registry with the
// OCI 1.1 referrers API, which distribution 2.8 lacks.
func referrersAPI(t *testing.T, wrap func(http.Handler) http.Handler) *registrytest.Registry {
	t.Helper()
	h := ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &registrytest.Registry{Host: strings.TrimPrefix(srv.URL, "http://"), URL: srv.URL}
}

// attachedFixture is what the test attached to the source image, as cosign
// (tags) and an OCI 1.1 client (referrers) do.
type attachedFixture struct {
	repo      name.Repository
	image     v1.Descriptor
	platforms []v1.Hash
	// tags maps each cosign tag to its digest; referrers each referrer to
	// its subject.
	tags      map[string]v1.Hash
	referrers map[v1.Hash]v1.Hash
	// dangling is a referrer deleted from the source after it was attached.
	dangling v1.Hash
	// want is Result.Attached for a destination that has none of it.
	want []string
}

func cosignTag(h v1.Hash, suffix string) string {
	return fmt.Sprintf("sha256-%s.%s", h.Hex, suffix)
}

// pushTag pushes a signature-like image under tag.
func pushTag(t *testing.T, s side, repo name.Repository, tag string) v1.Hash {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag(tag), img, s.opts...); err != nil {
		t.Fatalf("push %s: %v", tag, err)
	}
	d, _ := img.Digest()
	return d
}

// pushReferrer pushes an SBOM-like OCI manifest whose subject is subject,
// by digest, as oras attach does.
func pushReferrer(t *testing.T, s side, repo name.Repository, subject v1.Descriptor, content string) v1.Hash {
	t.Helper()
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), static.NewLayer([]byte(content), "application/spdx+json"))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Subject(mutate.ConfigMediaType(img, sbomType), subject).(v1.Image)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Digest(d.String()), img, s.opts...); err != nil {
		t.Fatalf("push referrer: %v", err)
	}
	return d
}

func referrerName(h v1.Hash) string { return fmt.Sprintf("referrer %s (%s)", h, sbomType) }

// attach signs the image and one platform (.sig), attests the image (.att),
// and attaches an SBOM referrer to the image (signed too) and one to the
// other platform, plus one deleted since.
func attach(t *testing.T, qa side, src name.Reference) attachedFixture {
	t.Helper()
	head, err := remote.Head(src, qa.opts...)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(src, qa.opts...)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	f := attachedFixture{repo: src.Context(), image: *head, tags: map[string]v1.Hash{}, referrers: map[v1.Hash]v1.Hash{}}
	for _, d := range im.Manifests {
		f.platforms = append(f.platforms, d.Digest)
	}
	imageSig, platformSig, att := cosignTag(head.Digest, "sig"), cosignTag(f.platforms[0], "sig"), cosignTag(head.Digest, "att")
	for _, tag := range []string{imageSig, platformSig, att} {
		f.tags[tag] = pushTag(t, qa, f.repo, tag)
	}
	imageSBOM := pushReferrer(t, qa, f.repo, *head, "image sbom")
	platformSBOM := pushReferrer(t, qa, f.repo, im.Manifests[1], "platform sbom")
	f.referrers[imageSBOM] = head.Digest
	f.referrers[platformSBOM] = f.platforms[1]
	// A signed SBOM: the signature is attached to the SBOM, not the image.
	sbomSig := cosignTag(imageSBOM, "sig")
	f.tags[sbomSig] = pushTag(t, qa, f.repo, sbomSig)
	f.dangling = pushReferrer(t, qa, f.repo, *head, "withdrawn sbom")
	if err := remote.Delete(f.repo.Digest(f.dangling.String()), qa.opts...); err != nil {
		t.Fatal(err)
	}
	// The image's first, then each platform's, then what is attached to
	// those; per digest the cosign tags in the order sig, att, sbom, then the
	// referrers.
	f.want = []string{imageSig, att, referrerName(imageSBOM), platformSig, referrerName(platformSBOM), sbomSig}
	return f
}

// listed returns the referrers of subject in repo, by digest.
func listed(t *testing.T, s side, repo name.Repository, subject v1.Hash) []v1.Hash {
	t.Helper()
	idx, err := remote.Referrers(repo.Digest(subject.String()), s.opts...)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, d := range im.Manifests {
		out = append(out, d.Digest)
	}
	return out
}

// assertAttached checks that dst holds every attached artifact at its
// source digest and lists each referrer for its subject.
func assertAttached(t *testing.T, prod side, dst name.Repository, f attachedFixture) {
	t.Helper()
	for tag, want := range f.tags {
		got, err := remote.Head(dst.Tag(tag), prod.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		if got.Digest != want {
			t.Errorf("%s at %s, source %s", tag, got.Digest, want)
		}
	}
	for ref, subject := range f.referrers {
		if _, err := remote.Head(dst.Digest(ref.String()), prod.opts...); err != nil {
			t.Errorf("referrer %s: %v", ref, err)
		}
		if got := listed(t, prod, dst, subject); !slices.Contains(got, ref) {
			t.Errorf("referrers of %s are %v, want %s among them", subject, got, ref)
		}
	}
	if _, err := remote.Head(dst.Digest(f.dangling.String()), prod.opts...); err == nil {
		t.Errorf("the referrer deleted from the source was copied")
	}
}

// assertNoneAttached checks that dst holds nothing attached to the image.
func assertNoneAttached(t *testing.T, prod side, dst name.Repository, f attachedFixture) {
	t.Helper()
	for tag := range f.tags {
		if _, err := remote.Head(dst.Tag(tag), prod.opts...); err == nil {
			t.Errorf("%s was copied", tag)
		}
	}
	for _, subject := range append([]v1.Hash{f.image.Digest}, f.platforms...) {
		if got := listed(t, prod, dst, subject); len(got) != 0 {
			t.Errorf("referrers of %s copied: %v", subject, got)
		}
	}
}

func TestPromoteAttached(t *testing.T) {
	tests := []struct {
		name string
		// start returns the source and destination registries.
		start func(t *testing.T) (qa, prod side)
		// fallback: the registry has no referrers API; clients keep the list
		// under the tag sha256-<hex>.
		fallback bool
	}{{
		name: "distribution 2.8, referrers under the fallback tag",
		start: func(t *testing.T) (side, side) {
			if testing.Short() {
				t.Skip("starts docker-registry")
			}
			return newSide(t, registrytest.Start(t, registrytest.Options{})), newSide(t, registrytest.Start(t, registrytest.Options{TLS: true, Auth: true}))
		},
		fallback: true,
	}, {
		name: "registries with the referrers API",
		start: func(t *testing.T) (side, side) {
			return newSide(t, referrersAPI(t, nil)), newSide(t, referrersAPI(t, nil))
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qa, prod := tt.start(t)
			testAttached(t, qa, prod, tt.fallback)
		})
	}
}

func testAttached(t *testing.T, qa, prod side, fallback bool) {
	ctx := context.Background()
	src := gatewayImage(t, qa)
	f := attach(t, qa, src)
	if fallback && !slices.Contains(listed(t, qa, f.repo, f.image.Digest), f.dangling) {
		// What the test means to show: a listed referrer that is gone.
		t.Fatalf("the source's fallback tag does not list the deleted referrer %s", f.dangling)
	}
	dstRepo, err := prod.cfg.ParseRepository(prod.reg.Host + "/prod/petstore")
	if err != nil {
		t.Fatal(err)
	}
	req := promote.Request{Source: src, Destination: dstRepo, SourceOptions: qa.opts, DestinationOptions: prod.opts}

	t.Run("dry run lists what is attached and writes nothing", func(t *testing.T) {
		dry := req
		dry.DryRun = true
		prod.rec.Reset()
		res, err := promote.Promote(ctx, dry)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Attached, f.want) {
			t.Fatalf("attached %q, want %q", res.Attached, f.want)
		}
		for _, q := range prod.rec.Requests() {
			if q.Method != http.MethodGet && q.Method != http.MethodHead {
				t.Fatalf("dry run sent %s %s", q.Method, q.Path)
			}
		}
		assertNoneAttached(t, prod, dstRepo, f)
	})

	t.Run("skip-attached copies the image alone", func(t *testing.T) {
		skip := req
		skip.Destination = dstRepo.Repo("prod", "unsigned")
		skip.DryRun = true
		res, err := promote.Promote(ctx, skip)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Attached, f.want) {
			t.Fatalf("without --skip-attached, attached %q, want %q", res.Attached, f.want)
		}
		skip.DryRun, skip.SkipAttached = false, true
		res, err = promote.Promote(ctx, skip)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Attached) != 0 {
			t.Fatalf("attached %q, want none", res.Attached)
		}
		if _, err := remote.Head(skip.Destination.Digest(f.image.Digest.String()), prod.opts...); err != nil {
			t.Fatalf("the image was not copied: %v", err)
		}
		assertNoneAttached(t, prod, skip.Destination, f)
	})

	t.Run("copies what is attached to the image and its platforms, same digests", func(t *testing.T) {
		res, err := promote.Promote(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.AlreadyPresent || !slices.Equal(res.Attached, f.want) {
			t.Fatalf("result %+v, want the image copied and attached %q", res, f.want)
		}
		assertAttached(t, prod, dstRepo, f)
		// Where the destination keeps the list says which way it was written.
		_, err = remote.Head(dstRepo.Tag(strings.Replace(f.image.Digest.String(), ":", "-", 1)), prod.opts...)
		if fallback != (err == nil) {
			t.Errorf("fallback tag at the destination: %v, want it only on a registry without the referrers API", err)
		}
	})

	t.Run("second run copies nothing", func(t *testing.T) {
		prod.rec.Reset()
		res, err := promote.Promote(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Attached) != 0 {
			t.Fatalf("attached %q, want none", res.Attached)
		}
		if w := prod.rec.ManifestWrites(); len(w) != 0 {
			t.Fatalf("second run wrote manifests %v", w)
		}
		if up := prod.rec.Uploads(); len(up) != 0 {
			t.Fatalf("second run uploaded %v", up)
		}
		assertAttached(t, prod, dstRepo, f)
	})

	t.Run("a new signature moves the tag, a new SBOM is added", func(t *testing.T) {
		resigned, sbom := cosignTag(f.image.Digest, "sig"), cosignTag(f.platforms[1], "sbom")
		f.tags[resigned] = pushTag(t, qa, f.repo, resigned)
		f.tags[sbom] = pushTag(t, qa, f.repo, sbom)
		prod.rec.Reset()
		res, err := promote.Promote(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{resigned, sbom}; !slices.Equal(res.Attached, want) {
			t.Fatalf("attached %q, want %q", res.Attached, want)
		}
		if w := prod.rec.ManifestWrites(); len(w) != 2 {
			t.Fatalf("wrote manifests %v, want the two tags", w)
		}
		assertAttached(t, prod, dstRepo, f)
	})

	if !fallback {
		return
	}
	t.Run("a referrer the fallback tag lost is listed again", func(t *testing.T) {
		// A client that pushes without maintaining the fallback tag leaves
		// the manifest unlisted; deleting the list does the same.
		list, err := remote.Head(dstRepo.Tag(strings.Replace(f.image.Digest.String(), ":", "-", 1)), prod.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Delete(dstRepo.Digest(list.Digest.String()), prod.opts...); err != nil {
			t.Fatal(err)
		}
		prod.rec.Reset()
		res, err := promote.Promote(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.want[2:3]; !slices.Equal(res.Attached, want) {
			t.Fatalf("attached %q, want %q", res.Attached, want)
		}
		if up := prod.rec.Uploads(); len(up) != 0 {
			t.Fatalf("uploaded %v; the referrer's blobs were there", up)
		}
		assertAttached(t, prod, dstRepo, f)
	})
}

// TestPromoteAttachedFailure: a destination that does not take a signature
// as it is fails the promote with an error naming it, though the image is
// copied, and with the sentinel the image's copy would give.
func TestPromoteAttachedFailure(t *testing.T) {
	isSig := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".sig") }
	tests := []struct {
		name string
		// destination wraps the destination registry.
		destination func(http.Handler) http.Handler
		want        error
	}{{
		name: "refused",
		destination: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut && isSig(r) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusForbidden)
					_, _ = io.WriteString(w, `{"errors":[{"code":"DENIED","message":"signatures are written by the signer"}]}`)
					return
				}
				h.ServeHTTP(w, r)
			})
		},
		want: promote.ErrAuth,
	}, {
		name: "rewritten",
		destination: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead && isSig(r) {
					w = otherDigest{w}
				}
				h.ServeHTTP(w, r)
			})
		},
		want: promote.ErrMismatch,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			qa := newSide(t, referrersAPI(t, nil))
			prod := newSide(t, referrersAPI(t, tt.destination))
			img, err := random.Image(128, 1)
			if err != nil {
				t.Fatal(err)
			}
			src, _ := qa.cfg.ParseReference(qa.reg.Host + "/qa/x:v1")
			if err := remote.Write(src, img, qa.opts...); err != nil {
				t.Fatal(err)
			}
			digest, _ := img.Digest()
			sig := cosignTag(digest, "sig")
			pushTag(t, qa, src.Context(), sig)
			dst, _ := prod.cfg.ParseRepository(prod.reg.Host + "/prod/x")

			_, err = promote.Promote(ctx, promote.Request{Source: src, Destination: dst, SourceOptions: qa.opts, DestinationOptions: prod.opts})
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			for _, want := range []string{sig, dst.Digest(digest.String()).String() + " is promoted"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if _, err := remote.Head(dst.Digest(digest.String()), prod.opts...); err != nil {
				t.Errorf("the image is not at the destination: %v", err)
			}
		})
	}
}

// otherDigest answers with another digest than the manifest's, as a
// registry that converted the manifest would.
type otherDigest struct{ http.ResponseWriter }

func (w otherDigest) WriteHeader(code int) {
	if code == http.StatusOK {
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
	}
	w.ResponseWriter.WriteHeader(code)
}

// TestPromoteAttachedUnreadable: a source that refuses to list referrers
// fails the promote before anything is written.
func TestPromoteAttachedUnreadable(t *testing.T) {
	ctx := context.Background()
	refusing := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/referrers/") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	qa := newSide(t, referrersAPI(t, refusing))
	prod := newSide(t, referrersAPI(t, nil))
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := qa.cfg.ParseReference(qa.reg.Host + "/qa/x:v1")
	if err := remote.Write(src, img, qa.opts...); err != nil {
		t.Fatal(err)
	}
	dst, _ := prod.cfg.ParseRepository(prod.reg.Host + "/prod/x")
	prod.rec.Reset()
	_, err = promote.Promote(ctx, promote.Request{Source: src, Destination: dst, SourceOptions: qa.opts, DestinationOptions: prod.opts})
	if !errors.Is(err, promote.ErrAuth) || !strings.Contains(err.Error(), "referrers") {
		t.Fatalf("error = %v, want ErrAuth listing the source's referrers", err)
	}
	for _, q := range prod.rec.Requests() {
		if q.Method != http.MethodGet && q.Method != http.MethodHead {
			t.Fatalf("sent %s %s before failing", q.Method, q.Path)
		}
	}
}
