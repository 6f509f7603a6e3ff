-- The networks a key may be used from: a JSON array of CIDR networks
-- (`["203.0.113.0/24"]`); NULL: any address.
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;
