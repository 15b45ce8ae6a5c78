# Install code-server (VS Code in the browser) for the user "coder" with a generated password.
log_step "Installing code-server"
apt_install ca-certificates curl git
CODE_USER=coder
id "${CODE_USER}" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "${CODE_USER}"
curl -fsSL https://code-server.dev/install.sh -o /tmp/code-server-install.sh
sh /tmp/code-server-install.sh --method=standalone --prefix=/usr/local
rm -f /tmp/code-server-install.sh
