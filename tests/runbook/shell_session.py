# python manage.py shell

from accounts.models import ArtistProfile, User

# Test 1: Create test artist
user = User.objects.create_user(
    username='test_artist',
    email='test@example.com',
    user_type='artist'
)
profile = ArtistProfile.objects.create(
    user=user,
    display_name='Test Artist'
)

# Test 2: Test connection status
print(f"Connected: {profile.is_sumup_connected}")  # Should be False
print(f"Status: {profile.sumup_connection_status}")  # Should be 'not_connected'

# Test 3: Test connection update
profile.update_sumup_connection({
    'access_token': 'test_token',
    'refresh_token': 'test_refresh',
    'expires_in': 3600
})
print(f"Connected: {profile.is_sumup_connected}")  # Should be True

# Clean up
user.delete()
