// The twin's surfaces: Lambert shading under one point light plus ambient,
// on a colour times a texture. Much cheaper per pixel than Bevy's PBR
// shader, which matters on software Vulkan.
#import bevy_pbr::forward_io::VertexOutput

struct TwinMaterial {
    // Linear RGB surface colour (multiplies the texture).
    colour: vec4<f32>,
    // Light position, world frame.
    light_position: vec4<f32>,
    // Light colour times its strength: irradiance at 1 m, in display units.
    light: vec4<f32>,
    // Ambient light, display units.
    ambient: vec4<f32>,
}

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> material: TwinMaterial;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var colour_texture: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var colour_sampler: sampler;

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
#ifdef VERTEX_UVS_A
    let texel = textureSample(colour_texture, colour_sampler, in.uv).rgb;
#else
    let texel = vec3<f32>(1.0);
#endif
    let albedo = material.colour.rgb * texel;
    let to_light = material.light_position.xyz - in.world_position.xyz;
    let d2 = max(dot(to_light, to_light), 1e-4);
    let lambert = max(dot(normalize(in.world_normal), to_light * inverseSqrt(d2)), 0.0);
    let irradiance = material.light.rgb * (lambert / d2) + material.ambient.rgb;
    return vec4<f32>(albedo * irradiance, 1.0);
}
