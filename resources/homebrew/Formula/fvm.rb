# Homebrew formula for the fvm CLI, built from source. `make release` renders
# this file into dist/homebrew/Formula/fvm.rb with the release's version and
# the SHA-256 of its source archive (its template fields); the rendered file is
# what a tap publishes.
class Fvm < Formula
  desc "Linux virtual machines from cloud images, as easy as docker run"
  homepage "https://github.com/fvmhq/fvm"
  url "https://github.com/fvmhq/fvm/releases/download/{{.Tag}}/fvm-{{.Version}}-src.tar.gz"
  version "{{.Version}}"
  sha256 "{{.SourceSHA256}}"
  head "https://github.com/fvmhq/fvm.git", branch: "main"

  depends_on "go" => :build

  def install
    ENV["CGO_ENABLED"] = "0"
    system "go", "build", *std_go_args(ldflags: "-s -w -X github.com/fvmhq/fvm/cli.Version=#{version}")
    generate_completions_from_executable(bin/"fvm", "completion")
  end

  def caveats
    <<~EOS
      fvm runs VMs with QEMU (brew install qemu) and, on macOS 13 or later,
      with Apple's Virtualization framework through the signed menu-bar app:
        brew install --cask fvm-app
    EOS
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/fvm version")
  end
end
