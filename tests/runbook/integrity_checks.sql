-- Test 1: Verify all artists have default connection status
SELECT COUNT(*) as total_artists,
       COUNT(CASE WHEN sumup_connection_status = 'not_connected' THEN 1 END) as not_connected_count
FROM accounts_artistprofile;

-- Test 2: Check for any NULL values in required fields
SELECT COUNT(*) as artists_with_null_status
FROM accounts_artistprofile
WHERE sumup_connection_status IS NULL;

-- Test 3: Verify field constraints
SELECT COUNT(*) as invalid_status_count
FROM accounts_artistprofile
WHERE sumup_connection_status NOT IN ('not_connected', 'connected', 'expired', 'error');
