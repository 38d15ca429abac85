package image

import (
	"context"
	"fmt"
	"os"

	"github.com/fvmhq/fvm/core/api"
)

// ImportUploaded registers the disk a client uploaded (req.Upload), which the
// host holds at path with the SHA-256 digest it checked on arrival: the file
// is inspected like any user's disk (qcow2 backing and data files refused)
// and renamed into the cache, so it is not copied again. req.Source is the
// file's name on the client; the image's source says it came by upload.
func (s *Service) ImportUploaded(ctx context.Context, path, digest string, req api.ImportRequest) (api.Image, error) {
	arch, err := parseArch(req.Arch)
	if err != nil {
		return api.Image{}, err
	}
	got, err := ParseDigest(digest)
	if err != nil || got.Algo != SHA256 {
		return api.Image{}, fmt.Errorf("upload %s: not a sha256 digest", digest)
	}
	var want Digest
	if req.Checksum != "" {
		if want, err = ParseDigest(req.Checksum); err != nil {
			return api.Image{}, api.Errorf(api.CodeInvalid, "--checksum: %v", err)
		}
		have := got
		if want.Algo != SHA256 {
			if have, err = hashFileWith(ctx, want.Algo, path); err != nil {
				return api.Image{}, err
			}
		}
		if have != want {
			return api.Image{}, api.Errorf(api.CodeInvalid, "import %s: %v: expected %s, got %s (nothing was imported)", req.Source, ErrChecksumMismatch, want, have)
		}
	}
	name := req.Name
	if name == "" {
		name = s.importName(req.Source)
	}
	if err := ValidateName(name); err != nil {
		return api.Image{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	img, err := s.reg.ImportFile(ctx, path, name, ImportOptions{
		Version: req.Version, Arch: arch, Source: "upload:" + req.Source, Move: true, Digest: got, Checksum: want,
	})
	if err != nil {
		return api.Image{}, inputError(err)
	}
	return img, nil
}

func hashFileWith(ctx context.Context, algo Algo, p string) (Digest, error) {
	f, err := os.Open(p)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	h := algo.NewHash()
	if _, err := CopyContext(ctx, h, f, nil); err != nil {
		return Digest{}, err
	}
	return hexOf(algo, h), nil
}
