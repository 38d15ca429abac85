package image

import "github.com/fvmhq/fvm/core/api"

// derivedFiles lists the files made from an image's base disk that belong to
// it: counted in `fvm images` sizes, deleted by prune with their base. None
// yet: this is the place for warm snapshots per image (a frozen disk and saved
// RAM per base and VM shape), which are named after the base they come from.
func (s *Service) derivedFiles(img api.Image) []string { return nil }
