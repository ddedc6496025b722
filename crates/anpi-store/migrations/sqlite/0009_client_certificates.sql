-- Client certificates (mutual TLS) for admin access (docs/operations.md, "Client certificates"):
-- the tenant's CA certificate (PEM; empty: none) and whether admins must present a certificate
-- it issued (0/1). Enabling needs a CA; removing the CA needs the requirement off.
ALTER TABLE tenant_security ADD COLUMN client_ca_pem TEXT NOT NULL DEFAULT '';
ALTER TABLE tenant_security ADD COLUMN admin_cert_required BIGINT NOT NULL DEFAULT 0;
