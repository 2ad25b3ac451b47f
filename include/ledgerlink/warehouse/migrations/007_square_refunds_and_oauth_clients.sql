-- Square refunds (ListPaymentRefunds), landed raw like payments: a refunded charge must be visible
-- downstream so that a fully refunded one is never linked as if it had been paid.
create table raw.square_refunds (like raw.qonto_supplier_invoices including all);

-- OAuth clients a workspace registered dynamically (RFC 7591), reused on reconnect instead of
-- registering again. A client is registered for one redirect URI at one authorization server.
-- Its secret and registration access token (RFC 7592), when the server issues them, are
-- Fernet-encrypted like every token; the client id is not a secret.
create table ops.oauth_clients (
    workspace_id text not null references ops.workspaces,
    source text not null,
    authorization_server text not null,
    redirect_uri text not null,
    client_id text not null,
    client_secret_encrypted bytea,
    registration_access_token_encrypted bytea,
    registration_client_uri text,
    client_secret_expires_at timestamptz,
    registered_at timestamptz not null default now(),
    primary key (workspace_id, source, authorization_server, redirect_uri)
);
