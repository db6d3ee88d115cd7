#!/usr/bin/env python
# verify_migration.py

import os
import sys
import django

# Setup Django
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'events.settings')
django.setup()

from accounts.models import ArtistProfile

def verify_migration():
    print("🔍 Verifying SumUp OAuth migration...")

    # Test 1: Check all artists have connection status
    total_artists = ArtistProfile.objects.count()
    not_connected = ArtistProfile.objects.filter(
        sumup_connection_status='not_connected'
    ).count()

    print(f"📊 Total Artists: {total_artists}")
    print(f"📊 Not Connected: {not_connected}")

    if total_artists == not_connected:
        print("✅ All artists properly migrated to 'not_connected' status")
    else:
        print("❌ Migration issue: Not all artists have correct status")
        return False

    # Test 2: Check model methods work
    if total_artists > 0:
        artist = ArtistProfile.objects.first()
        try:
            # Test new properties
            is_connected = artist.is_sumup_connected
            token_expired = artist.sumup_token_expired
            print("✅ Model methods working correctly")
        except Exception as e:
            print(f"❌ Model method error: {e}")
            return False

    # Test 3: Check field defaults
    null_status_count = ArtistProfile.objects.filter(
        sumup_connection_status__isnull=True
    ).count()

    if null_status_count == 0:
        print("✅ No NULL connection statuses found")
    else:
        print(f"❌ Found {null_status_count} artists with NULL connection status")
        return False

    print("🎉 All verification tests passed!")
    return True

if __name__ == '__main__':
    if verify_migration():
        sys.exit(0)
    else:
        sys.exit(1)
