# Homebrew cask for fvm.app: the signed menu-bar app that hosts VMs (with
# the vz helper inside it) and carries the fvm CLI. `make release` on a Mac
# renders this file into dist/homebrew/Casks/fvm-app.rb with the release's
# version and the SHA-256 of each architecture's zipped app (its template
# fields).
cask "fvm-app" do
  version "{{.Version}}"

  on_arm do
    url "https://github.com/fvmhq/fvm/releases/download/{{.Tag}}/fvm-app-#{version}-darwin-arm64.zip"
    sha256 "{{.AppSHA256.arm64}}"
  end
  on_intel do
    url "https://github.com/fvmhq/fvm/releases/download/{{.Tag}}/fvm-app-#{version}-darwin-amd64.zip"
    sha256 "{{.AppSHA256.amd64}}"
  end

  name "fvm"
  desc "Menu-bar host for Linux VMs on Apple's Virtualization framework"
  homepage "https://github.com/fvmhq/fvm"

  depends_on macos: ">= :ventura"
  conflicts_with formula: "fvm"

  app "fvm.app"
  binary "#{appdir}/fvm.app/Contents/MacOS/fvm"

  uninstall quit:      "dev.fvm.app",
            launchctl: "dev.fvm.app"

  zap trash: [
    "~/.fvm",
    "~/Library/Application Support/fvm",
    "~/Library/Caches/fvm",
    "~/Library/LaunchAgents/dev.fvm.app.plist",
  ]
end
